/**
 * The keyring for secrets at rest (`keyring_key_file`). One key per line,
 * "<id> <base64 of 32 bytes>"; the first line is the key new values are
 * sealed with, the others still open older values, so keys can be rotated by
 * adding a line on top. Blank lines and "#" comments are ignored.
 */
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';

const ID = /^[A-Za-z0-9_.-]{1,64}$/;
const PREFIX = 'acmed:enc:v1:';

export class KeyringError extends Error {
  readonly code = 'KEYRING_INVALID';
}

export class Keyring {
  private constructor(private readonly keys: Map<string, Buffer>, readonly currentId: string) {}

  static parse(text: string, source = 'keyring'): Keyring {
    const keys = new Map<string, Buffer>();
    let currentId: string | undefined;
    text.split('\n').forEach((raw, index) => {
      const line = raw.trim();
      if (line === '' || line.startsWith('#')) return;
      const [id, encoded, ...rest] = line.split(/\s+/);
      const where = `${source}:${index + 1}`;
      if (!ID.test(id) || !encoded || rest.length > 0) throw new KeyringError(`${where}: expected "<id> <base64 key>"`);
      const key = Buffer.from(encoded, 'base64');
      if (key.length !== 32) throw new KeyringError(`${where}: key ${id} is ${key.length} bytes; AES-256 needs 32`);
      if (keys.has(id)) throw new KeyringError(`${where}: key id ${id} appears twice`);
      keys.set(id, key);
      currentId ??= id;
    });
    if (!currentId) throw new KeyringError(`${source}: no keys`);
    return new Keyring(keys, currentId);
  }

  static async load(path: string): Promise<Keyring> {
    const info = await stat(path).catch((err: NodeJS.ErrnoException) => {
      throw new KeyringError(`cannot read keyring_key_file ${path}: ${err.code ?? err.message}`);
    });
    if ((info.mode & 0o077) !== 0) throw new KeyringError(`keyring_key_file ${path} must not be readable by group or others (chmod 600)`);
    return Keyring.parse(await readFile(path, 'utf8'), path);
  }

  static isSealed(value: string): boolean {
    return value.startsWith(PREFIX);
  }

  /** AES-256-GCM with a fresh 96-bit nonce; the key id and the key name are bound in as associated data. */
  seal(value: string, aad: string): string {
    const iv = randomBytes(12);
    const cipher = createCipheriv('aes-256-gcm', this.keys.get(this.currentId)!, iv);
    cipher.setAAD(Buffer.from(`${this.currentId}\n${aad}`));
    const body = Buffer.concat([cipher.update(value, 'utf8'), cipher.final()]);
    return `${PREFIX}${this.currentId}:${iv.toString('base64url')}:${cipher.getAuthTag().toString('base64url')}:${body.toString('base64url')}`;
  }

  open(sealed: string, aad: string): string {
    const [id, iv, tag, body] = sealed.slice(PREFIX.length).split(':');
    const key = this.keys.get(id);
    if (!key) throw new KeyringError(`value sealed with key "${id}", which is not in the keyring`);
    const decipher = createDecipheriv('aes-256-gcm', key, Buffer.from(iv, 'base64url'));
    decipher.setAAD(Buffer.from(`${id}\n${aad}`));
    decipher.setAuthTag(Buffer.from(tag, 'base64url'));
    try {
      return Buffer.concat([decipher.update(Buffer.from(body, 'base64url')), decipher.final()]).toString('utf8');
    } catch {
      throw new KeyringError(`value for ${aad} failed authentication (wrong key or tampered)`);
    }
  }
}
