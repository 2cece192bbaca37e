/**
 * The files of the service's bundle, beside `<build>/src/bundle/main.js` (src/service-loader.ts),
 * named here for the build (src/build/bundle.ts) and the loader alike.
 */

/** The bundle of start.ts, as one CommonJS file. */
export const BUNDLE_FILE = 'service.cjs';

/** V8's code cache for it, written by the build. */
export const CACHE_FILE = `${BUNDLE_FILE}.cache`;

/** The argument with which the build runs the loader to write the cache instead of starting. */
export const WRITE_CODE_CACHE = '--write-code-cache';
