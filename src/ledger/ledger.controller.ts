import { BadRequestException, Controller, Get, Header, Headers, Param, Query, Sse } from '@nestjs/common';
import { ApiBearerAuth, ApiOperation, ApiTags } from '@nestjs/swagger';
import { map, type Observable } from 'rxjs';
import {
  keyIdParam,
  type LedgerPageQuery,
  lastEventId,
  ledgerPageQuery,
  ledgerTailQuery,
} from './ledger.dto.js';
import { LedgerService } from './ledger.service.js';

@ApiTags('ledger')
@ApiBearerAuth()
@Controller('api/v1/ledger')
export class LedgerController {
  constructor(private readonly ledger: LedgerService) {}

  @Get()
  @ApiOperation({ summary: 'Ledger entries in position order, each with its hash chain links' })
  page(@Query({ schema: ledgerPageQuery }) query: LedgerPageQuery) {
    return this.ledger.page(query.after, query.limit);
  }

  @Get('head')
  @ApiOperation({ summary: 'The last sequenced position and its chain hash' })
  head() {
    return this.ledger.head();
  }

  @Get('checkpoints')
  @ApiOperation({ summary: 'Signed checkpoints (position, chain head, key id, Ed25519 signature)' })
  async checkpoints(@Query({ schema: ledgerPageQuery }) query: LedgerPageQuery) {
    const checkpoints = await this.ledger.checkpoints(query.after, query.limit);
    const last = checkpoints.at(-1);
    return { checkpoints, next: checkpoints.length === query.limit && last ? last.position : null };
  }

  @Get('public-key')
  @Header('Content-Type', 'application/x-pem-file; charset=utf-8')
  @ApiOperation({ summary: "The current signing key's public key, as PEM" })
  publicKey(): string {
    return this.ledger.currentPublicKey().publicKeyPem;
  }

  @Get('public-keys')
  @ApiOperation({ summary: 'Every public key that ever signed a checkpoint, with its id' })
  async publicKeys() {
    return { current: this.ledger.currentPublicKey().keyId, keys: await this.ledger.publicKeys() };
  }

  @Get('public-keys/:keyId')
  @ApiOperation({ summary: 'One public key by id' })
  publicKeyById(@Param('keyId', { schema: keyIdParam }) keyId: string) {
    return this.ledger.publicKey(keyId);
  }

  @Get('verify')
  @ApiOperation({ summary: 'Re-check the whole hash chain and every checkpoint signature' })
  verify() {
    return this.ledger.verify();
  }

  @Sse('stream')
  @ApiOperation({ summary: 'Live tail of the ledger as Server-Sent Events; resumes from Last-Event-ID' })
  stream(
    @Query({ schema: ledgerTailQuery }) query: { after?: number },
    @Headers('last-event-id') lastId: string | undefined,
  ): Observable<{ id: string; type: string; data: unknown }> {
    const parsed = lastEventId.safeParse(lastId);
    if (!parsed.success) throw new BadRequestException(['Last-Event-ID: must be a ledger position']);
    const resumeFrom = parsed.data ?? query.after ?? 0;
    return this.ledger
      .tail(resumeFrom)
      .pipe(map((entry) => ({ id: String(entry.position), type: 'entry', data: entry })));
  }
}
