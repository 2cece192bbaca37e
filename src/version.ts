/** The service's version, as in package.json (stated in OpenAPI and reports). */
export const VERSION = '0.1.0';
