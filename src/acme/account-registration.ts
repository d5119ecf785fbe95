/**
 * Registering the ACME account with the CA, and registering it again when
 * the CA has forgotten it (a restarted Pebble, a CA database reset). The key
 * stays the one in storage; only the account URL changes. Orders that find
 * the account gone at the same moment share one re-registration.
 */
import type { Logger } from '../log.js';
import type { AccountKeys } from '../storage/keys.js';
import type { Storage } from '../storage/storage.js';
import { saveAccountUrl } from './account.js';
import type { ClientInternals } from './acme-client-hooks.js';
import { AcmeAccountError, AcmeProblemError, describeProblem, isCaFault } from './errors.js';
import type { NoncePool } from './nonce-pool.js';
import { runOutsideOrders } from './order-scope.js';

export interface AccountRegistrationOptions {
  directoryUrl: string;
  email: string;
  /** Only the kid: it names the binding in errors; the HMAC key never leaves acme-client. */
  eabKid?: string;
  storage: Storage;
  /** Where this CA's account lives in storage. */
  account: AccountKeys;
  log: Logger;
  nonces: NoncePool;
}

/** Problems about the contact address, not the binding, even when a binding was sent. */
const CONTACT_PROBLEMS = new Set(['invalidContact', 'unsupportedContact']);

export class AccountRegistration {
  private recovery?: Promise<void>;

  constructor(private readonly client: ClientInternals, private readonly opts: AccountRegistrationOptions) {}

  /** The account URL signed requests carry now, if any. */
  get url(): string | null {
    return this.client.api.accountUrl;
  }

  /** Registers the stored key (newAccount), stores the account URL and returns it. */
  async register(): Promise<string> {
    try {
      // AcmeApi.createAccount, not Client.createAccount: the latter turns
      // into an account update whenever an account URL is already set, which
      // is exactly the case when the CA has forgotten that URL.
      await this.client.api.createAccount({ termsOfServiceAgreed: true, contact: [`mailto:${this.opts.email}`] });
    } catch (err) {
      throw registrationError(err, this.opts.eabKid);
    }
    const url = this.client.api.accountUrl;
    if (!url) throw new AcmeAccountError('the CA registered the ACME account but sent no account URL (Location)');
    await saveAccountUrl(this.opts.storage, this.opts.directoryUrl, url, this.opts.account);
    return url;
  }

  /**
   * Registers the account again after a request signed with staleUrl was
   * refused because the CA does not know it. Callers that arrive while a
   * re-registration runs wait for that one; callers whose staleUrl was
   * already replaced return at once and simply retry.
   */
  recover(staleUrl: string | null): Promise<void> {
    if (this.recovery) return this.recovery;
    if (this.url !== staleUrl) return Promise.resolve();
    // Shared by every waiting order, so no single order's abort may end it, nor is it billed to one.
    const recovery = runOutsideOrders(async () => {
      const url = await this.register();
      // A CA that lost its accounts lost its nonces too.
      this.opts.nonces.clear();
      this.opts.log.warn({ oldAccountUrl: staleUrl, accountUrl: url }, 'ACME account unknown to the CA; registered it again');
    });
    this.recovery = recovery.finally(() => {
      this.recovery = undefined;
    });
    return this.recovery;
  }
}

/**
 * One clear error for a refused registration. CA faults and rate limits keep
 * their own types, so the caller backs off the CA or honours Retry-After.
 */
export function registrationError(err: unknown, eabKid: string | undefined): unknown {
  if (isCaFault(err)) return err;
  if (err instanceof AcmeProblemError) {
    const { problem, problemType } = err;
    if (problemType === 'rateLimited') return err;
    if (eabKid && !CONTACT_PROBLEMS.has(problemType)) {
      return new AcmeAccountError(`the CA refused the external account binding for eab_kid "${eabKid}": ${problem.detail ?? describeProblem(problem, err.httpStatus)}`, problem, err);
    }
    const hint = problemType === 'externalAccountRequired'
      ? 'the CA requires an external account binding: set eab_kid and eab_hmac_key'
      : 'the CA refused to register the ACME account';
    return new AcmeAccountError(`${describeProblem(problem, err.httpStatus)} (${hint})`, problem, err);
  }
  return new AcmeAccountError(`cannot register the ACME account: ${(err as Error).message ?? String(err)}`, undefined, err);
}
