import type { Provider } from '@nestjs/common';
import { APP_CONFIG, type AppConfig } from '../config/config.js';
import { loadSigningKey } from './signing.js';

export const SIGNING_KEY = Symbol('SIGNING_KEY');

export const signingKeyProvider: Provider = {
  provide: SIGNING_KEY,
  inject: [APP_CONFIG],
  useFactory: (config: AppConfig) =>
    loadSigningKey({ signingKeyFile: config.signingKeyFile, dataDir: config.dataDir }),
};
