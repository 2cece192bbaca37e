import { Module } from '@nestjs/common';
import { ApiKeysController } from './api-keys.controller.js';
import { ApiKeysRepository } from './api-keys.repository.js';
import { ApiKeysService } from './api-keys.service.js';
import { BootstrapAdminKey } from './bootstrap-admin-key.js';

/** API keys. The AuthGuard (APP_GUARD in AppModule) checks them through the exported service. */
@Module({
  controllers: [ApiKeysController],
  providers: [ApiKeysRepository, ApiKeysService, BootstrapAdminKey],
  exports: [ApiKeysService],
})
export class AuthModule {}
