import { start } from './start.js';

// The service's entry point, unbundled. `npm start` runs the bundle of start.ts instead
// (src/service-loader.ts).
void start();
