/**
 * What one order carries down to every HTTP request it makes: its request
 * counter and its AbortSignal. acme-client's calls (createOrder →
 * signedRequest → getNonce → request) have no parameter to pass them through,
 * so they ride along in AsyncLocalStorage, which follows the order through
 * every await; overlapping orders each see their own.
 */
import { AsyncLocalStorage } from 'node:async_hooks';

export interface OrderScope {
  /** HTTP requests this order has sent, retries and nonce fetches included. */
  requests: number;
  signal?: AbortSignal;
}

const scopes = new AsyncLocalStorage<OrderScope>();

export function runInOrderScope<T>(scope: OrderScope, fn: () => Promise<T>): Promise<T> {
  return scopes.run(scope, fn);
}

/** Runs fn outside any order, e.g. work that several orders share and none may abort or be billed for. */
export function runOutsideOrders<T>(fn: () => Promise<T>): Promise<T> {
  return scopes.exit(fn);
}

export function currentOrderScope(): OrderScope | undefined {
  return scopes.getStore();
}
