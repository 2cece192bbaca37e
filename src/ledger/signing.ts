import {
  createHash,
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  type KeyObject,
  sign,
  verify,
} from 'node:crypto';
import { chmod, mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';

export interface SigningKey {
  keyId: string;
  privateKey: KeyObject;
  publicKeyPem: string;
}

/** Key id: the first 32 hex digits of SHA-256 over the public key's DER (SPKI) form. */
export function keyIdOf(publicKey: KeyObject): string {
  const der = publicKey.export({ type: 'spki', format: 'der' });
  return createHash('sha256').update(der).digest('hex').slice(0, 32);
}

function fromPrivatePem(pem: string, source: string): SigningKey {
  let privateKey: KeyObject;
  try {
    privateKey = createPrivateKey(pem);
  } catch {
    throw new Error(`${source} does not hold a PEM private key`);
  }
  if (privateKey.asymmetricKeyType !== 'ed25519') {
    throw new Error(
      `${source} holds a ${privateKey.asymmetricKeyType} key; checkpoints are signed with Ed25519`,
    );
  }
  const publicKey = createPublicKey(privateKey);
  return {
    keyId: keyIdOf(publicKey),
    privateKey,
    publicKeyPem: publicKey.export({ type: 'spki', format: 'pem' }).toString(),
  };
}

/**
 * Loads the checkpoint-signing key. It never lives in the database: whoever can edit the log
 * must not be able to re-sign it. From `SIGNING_KEY_FILE` when set, otherwise from
 * `<dataDir>/signing-key.pem`, generated (mode 0600) on first start.
 */
export async function loadSigningKey(opts: {
  signingKeyFile?: string;
  dataDir: string;
}): Promise<SigningKey> {
  if (opts.signingKeyFile) {
    const pem = await readFile(opts.signingKeyFile, 'utf8').catch((err: NodeJS.ErrnoException) => {
      throw new Error(`SIGNING_KEY_FILE: cannot read ${opts.signingKeyFile} (${err.code ?? err.message})`);
    });
    return fromPrivatePem(pem, `SIGNING_KEY_FILE (${opts.signingKeyFile})`);
  }
  const file = path.resolve(opts.dataDir, 'signing-key.pem');
  try {
    return fromPrivatePem(await readFile(file, 'utf8'), file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  await mkdir(path.dirname(file), { recursive: true });
  const { privateKey } = generateKeyPairSync('ed25519');
  const pem = privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
  // 'wx': never overwrite a key another process wrote in the meantime.
  await writeFile(file, pem, { mode: 0o600, flag: 'wx' }).catch(async (err: NodeJS.ErrnoException) => {
    if (err.code !== 'EEXIST') throw err;
  });
  await chmod(file, 0o600);
  return fromPrivatePem(await readFile(file, 'utf8'), file);
}

export function signPayload(key: SigningKey, payload: string): string {
  return sign(null, Buffer.from(payload, 'utf8'), key.privateKey).toString('base64');
}

export function verifyPayload(publicKeyPem: string, payload: string, signatureB64: string): boolean {
  try {
    return verify(
      null,
      Buffer.from(payload, 'utf8'),
      createPublicKey(publicKeyPem),
      Buffer.from(signatureB64, 'base64'),
    );
  } catch {
    return false;
  }
}
