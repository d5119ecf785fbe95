/**
 * What an order needs from the challenge side: a place to make key
 * authorizations visible while the CA validates. The http-01 token store
 * implements it; the ACME engine only sees this interface.
 */
export interface ChallengePublisher {
  publish(token: string, keyAuthorization: string): Promise<void>;
  withdraw(token: string): Promise<void>;
  /** Resolves once the CA has fetched every token, or after timeoutMs. */
  waitForFetches?(tokens: string[], timeoutMs: number): Promise<void>;
}
