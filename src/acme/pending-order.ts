/**
 * An order placed by an earlier run that may not have finished (crash,
 * restart, lost lock). The caller stores it when the order is placed; the
 * next run resumes it instead of placing a new one, which spares the CA's
 * new-order rate limit and any validation already done.
 */
import { nameOfIdentifier, type Identifier } from './identifiers.js';

export interface PendingOrder {
  /** The order's URL at the CA. */
  url: string;
  names: string[];
  /** PEM of the certificate key the order's CSR is (or will be) made from. */
  privkey: string;
  keyType: 'ecc' | 'rsa';
  /** The directory URL of the CA it was placed with; absent in orders placed before acmed knew several CAs (the first CA's). */
  ca?: string;
}

/** The fields of the CA's order object that decide whether it can be resumed. */
export interface OrderState {
  status: string;
  expires?: string;
  identifiers?: Identifier[];
}

/** Why pending cannot serve this request, or undefined when it can. */
export function resumeMismatch(pending: PendingOrder, request: { names: string[]; keyType: 'ecc' | 'rsa' }): string | undefined {
  if (!sameNames(pending.names, request.names)) return 'the names differ';
  if (pending.keyType !== request.keyType) return 'the key type differs';
  return undefined;
}

/** Why the CA's order cannot be carried on, or undefined when it can. */
export function orderUnusable(order: OrderState, names: string[], now: number): string | undefined {
  if (!['pending', 'ready', 'processing', 'valid'].includes(order.status)) return `the order is ${order.status}`;
  // A valid order's expiry does not matter: its certificate can still be downloaded.
  if (order.status !== 'valid' && order.expires && Date.parse(order.expires) <= now) return 'the order has expired';
  if (order.identifiers && !sameNames(order.identifiers.map(nameOfIdentifier), names)) return 'the order is for other names';
  return undefined;
}

function sameNames(a: string[], b: string[]): boolean {
  const norm = (names: string[]) => [...new Set(names.map((n) => n.toLowerCase()))].sort().join(',');
  return norm(a) === norm(b);
}
