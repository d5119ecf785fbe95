/**
 * The ACME action an HTTP request belongs to (new_order, get_authorization,
 * finalize_order, …), for the `action` label of the request metrics. acme-client's
 * calls reach our transport with no name attached, so the engine names each
 * step around the call and the name rides along in AsyncLocalStorage down to
 * the transport, like the order scope does. A request made while another
 * step is named (the nonce HEAD inside a signed POST) names itself.
 */
import { AsyncLocalStorage } from 'node:async_hooks';

export type AcmeAction =
  | 'get_directory' | 'new_nonce' | 'new_account' | 'new_order' | 'get_order' | 'get_authorization'
  | 'accept_challenge' | 'finalize_order' | 'get_certificate' | 'revoke_certificate' | 'get_renewal_info';

const actions = new AsyncLocalStorage<AcmeAction>();

export function asAction<T>(action: AcmeAction, fn: () => Promise<T>): Promise<T> {
  return actions.run(action, fn);
}

/** The step the current request belongs to; 'other' for anything the engine did not name. */
export function currentAction(): AcmeAction | 'other' {
  return actions.getStore() ?? 'other';
}

/** One ACME HTTP request as the transport saw it. */
export interface AcmeRequestSample {
  action: AcmeAction | 'other';
  method: string;
  /** The HTTP status, or "error" when no answer came (refused, reset, timed out). */
  status: string;
  seconds: number;
}
