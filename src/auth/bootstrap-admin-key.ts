import { Inject, Injectable, Logger, type OnApplicationBootstrap } from '@nestjs/common';
import { APP_CONFIG, type AppConfig } from '../config/config.js';
import { generateApiKey } from './api-key.secret.js';
import { ApiKeysRepository } from './api-keys.repository.js';

export const BOOTSTRAP_KEY_NAME = 'bootstrap-admin';

/** Where a human on this machine reaches the service, for the usage line. */
function baseUrl(config: AppConfig): string {
  const host = ['0.0.0.0', '::', ''].includes(config.host)
    ? 'localhost'
    : config.host.includes(':')
      ? `[${config.host}]`
      : config.host;
  return `http://${host}:${config.port}`;
}

/**
 * So that a new user is never locked out: on a first start with no stored key and no
 * ADMIN_TOKEN, creates an admin key and prints it once on stderr. It goes to the terminal
 * directly, never through the logger, so it never reaches a log pipeline; only its hash is kept.
 */
@Injectable()
export class BootstrapAdminKey implements OnApplicationBootstrap {
  private readonly logger = new Logger('ApiKeys');

  constructor(
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    private readonly keys: ApiKeysRepository,
  ) {}

  async onApplicationBootstrap(): Promise<void> {
    if (this.config.adminToken || (await this.keys.hasAnyKey())) return;
    const { key, hash, prefix } = generateApiKey();
    const created = await this.keys.insertIfNoKeys({
      name: BOOTSTRAP_KEY_NAME,
      role: 'admin',
      hash,
      prefix,
      createdBy: 'bootstrap',
      expiresAt: null,
    });
    // Another replica got there first: its key is the one.
    if (!created) return;
    this.logger.log({ keyId: created.id }, 'created the first admin key (printed once on stderr)');
    process.stderr.write(
      `upgrade-ledger: created the first admin key (shown once, store it now): ${key}\n` +
        `  use it as: curl -H 'Authorization: Bearer ${key}' ${baseUrl(this.config)}/api/v1/ledger\n` +
        '  then create keys for people and automation with POST /api/v1/api-keys, and revoke this one.\n',
    );
  }
}
