import { Body, Controller, Delete, Get, Header, HttpCode, HttpStatus, Param, Post } from '@nestjs/common';
import { ApiBearerAuth, ApiOperation, ApiTags } from '@nestjs/swagger';
import { apiKeyIdParam, type CreateApiKeyBody, createApiKeyBody, expiryOf } from './api-keys.dto.js';
import { type ApiKeyInfo, ApiKeysService, type CreatedApiKey } from './api-keys.service.js';
import { CurrentPrincipal, type Principal, Roles } from './principal.js';

@ApiTags('api-keys')
@ApiBearerAuth()
@Roles('admin')
@Controller('api/v1/api-keys')
export class ApiKeysController {
  constructor(private readonly keys: ApiKeysService) {}

  @Post()
  @HttpCode(HttpStatus.CREATED)
  // The response carries the secret: no cache anywhere may keep it.
  @Header('Cache-Control', 'no-store')
  @ApiOperation({ summary: 'Create a key; the response holds the key itself, shown this once' })
  create(
    @Body({ schema: createApiKeyBody }) body: CreateApiKeyBody,
    @CurrentPrincipal() principal: Principal,
  ): Promise<CreatedApiKey> {
    return this.keys.create({ name: body.name, role: body.role, expiresAt: expiryOf(body) }, principal);
  }

  @Get()
  @ApiOperation({ summary: 'Every key ever created, with its status; never the secrets' })
  async list(): Promise<{ keys: ApiKeyInfo[] }> {
    return { keys: await this.keys.list() };
  }

  @Delete(':id')
  @HttpCode(HttpStatus.NO_CONTENT)
  @ApiOperation({
    summary: 'Revoke a key: it stops working at once. 204 again for a revoked key; 404 if unknown',
  })
  async revoke(
    @Param('id', { schema: apiKeyIdParam }) id: string,
    @CurrentPrincipal() principal: Principal,
  ): Promise<void> {
    await this.keys.revoke(id, principal);
  }
}
