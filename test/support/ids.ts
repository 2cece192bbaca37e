/** A version 7, variant 10 UUID, as the service names what it creates itself (src/common/ids.ts). */
export const UUID_V7 = /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

/** The Unix milliseconds in a version 7 id's first 48 bits. */
export const uuidv7Ms = (id: string): number => Number.parseInt(id.replaceAll('-', '').slice(0, 12), 16);
