/**
 * The account's life after registration (`acmed account …`): what the CA
 * knows of it, a key rollover (RFC 8555 §7.3.5), a new contact address, and
 * deactivation (§7.3.6). Each is one signed request through the hooked
 * client, so the transport, nonces and retries are the orders' own.
 */
import { createPrivateKey } from 'node:crypto';
import { crypto as acmeCrypto } from 'acme-client';
import type { Logger } from '../log.js';
import type { AccountKeys } from '../storage/keys.js';
import { withLock } from '../storage/lock.js';
import type { Storage } from '../storage/storage.js';
import { loadAccountRecord } from './account.js';
import { keyChangeBody, type ClientInternals } from './acme-client-hooks.js';
import { AcmeAccountError } from './errors.js';

export interface AccountDetails {
  url: string;
  ca: string;
  status: string;
  contact: string[];
  key_type: string;
  /** When acmed registered it (null for accounts registered before acmed kept this). */
  registered_at: string | null;
  /** The CA's own createdAt, when it sends one (Let's Encrypt does; Pebble does not). */
  created_at: string | null;
}

export interface AccountLifecycleOptions {
  directoryUrl: string;
  storage: Storage;
  /** Where this CA's account lives in storage. */
  account: AccountKeys;
  log: Logger;
}

export class AccountLifecycle {
  constructor(private readonly client: ClientInternals, private readonly opts: AccountLifecycleOptions) {}

  async details(): Promise<AccountDetails> {
    const url = this.accountUrl();
    const resp = await this.client.api.updateAccount(null);
    const account = resp.data as { status?: string; contact?: string[]; createdAt?: string };
    const record = await loadAccountRecord(this.opts.storage, this.opts.directoryUrl, this.opts.account);
    return {
      url,
      ca: this.opts.directoryUrl,
      status: account.status ?? 'unknown',
      contact: account.contact ?? [],
      key_type: describeKey(String(await this.opts.storage.get(this.opts.account.key))),
      registered_at: record?.registeredAt ?? null,
      created_at: account.createdAt ?? null,
    };
  }

  /**
   * A new account key. It is written to storage beside the current one
   * first, made the account's key only once the CA has accepted the change,
   * and the old one is kept until then: a failure anywhere leaves a key the
   * CA knows. The caller replaces the engine afterwards, so every later
   * request is signed with the new key.
   */
  async rollover(): Promise<{ url: string; key_type: string }> {
    const url = this.accountUrl();
    return withLock(this.opts.storage, this.opts.account.lock, async () => {
      const next = (await acmeCrypto.createPrivateEcdsaKey('P-256')).toString();
      await this.opts.storage.set(this.opts.account.keyNext, next);
      const keyChangeUrl = await this.client.http.getResourceUrl('keyChange');
      await this.client.api.updateAccountKey(keyChangeBody(this.client, next, keyChangeUrl, url));
      await this.opts.storage.set(this.opts.account.key, next);
      await this.opts.storage.delete(this.opts.account.keyNext);
      this.opts.log.info({ accountUrl: url }, 'ACME account key rolled over');
      return { url, key_type: describeKey(next) };
    });
  }

  async updateEmail(email: string): Promise<AccountDetails> {
    await this.client.api.updateAccount({ contact: [`mailto:${email}`] });
    this.opts.log.info({ accountUrl: this.accountUrl() }, 'ACME account contact updated');
    return this.details();
  }

  /**
   * Deactivates the account for good (the CA refuses its key from now on),
   * then forgets the account URL and key, so the next order registers a new
   * account with a new key.
   */
  async deactivate(): Promise<{ url: string; status: string }> {
    const url = this.accountUrl();
    const resp = await this.client.api.updateAccount({ status: 'deactivated' });
    await withLock(this.opts.storage, this.opts.account.lock, async () => {
      await this.opts.storage.delete(this.opts.account.url);
      await this.opts.storage.delete(this.opts.account.key);
    });
    this.opts.log.warn({ accountUrl: url }, 'ACME account deactivated; the next order registers a new one');
    return { url, status: (resp.data as { status?: string }).status ?? 'deactivated' };
  }

  private accountUrl(): string {
    const url = this.client.api.accountUrl;
    if (!url) throw new AcmeAccountError('no ACME account is registered yet');
    return url;
  }
}

function describeKey(pem: string): string {
  try {
    const key = createPrivateKey(pem);
    const details = key.asymmetricKeyDetails ?? {};
    return key.asymmetricKeyType === 'ec' ? `ECDSA ${details.namedCurve === 'prime256v1' ? 'P-256' : details.namedCurve}` : `RSA ${details.modulusLength}`;
  } catch {
    return 'unknown';
  }
}
