/**
 * This instance's Consul session. Locks are acquired with it, and its
 * behavior is "delete": when the instance dies and stops renewing, Consul
 * deletes every lock it held. Lock-delay is 0 because lock keys carry their
 * own expiry and owner token; Consul's default 15 s would only stall takeover.
 *
 * Created on first use, renewed on a timer, and recreated when Consul has
 * invalidated it (an outage longer than the TTL, say).
 */
import type Consul from 'consul';

type Call = <T>(op: string, work: () => Promise<T>) => Promise<T>;

export interface ConsulSessionOptions {
  consul: Consul;
  call: Call;
  /** Consul accepts 10 s to 24 h. */
  ttlSeconds: number;
  name: string;
}

export class ConsulSession {
  private current: Promise<string> | null = null;
  private currentId: string | null = null;
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly opts: ConsulSessionOptions) {}

  /** The session's ID, creating the session if there is none. */
  id(): Promise<string> {
    this.current ??= this.create();
    return this.current;
  }

  /** Drops a session Consul no longer knows; the next id() creates a new one. */
  forget(id: string): void {
    if (this.currentId !== id) return;
    this.current = null;
    this.currentId = null;
    clearInterval(this.timer);
  }

  /** Ends the session; with behavior "delete" Consul removes the locks it holds. */
  async destroy(): Promise<void> {
    clearInterval(this.timer);
    const id = await this.current?.catch(() => null);
    this.current = null;
    this.currentId = null;
    if (id) await this.opts.call('session destroy', () => this.opts.consul.session.destroy(id));
  }

  private async create(): Promise<string> {
    const { consul, call, ttlSeconds, name } = this.opts;
    try {
      const { ID } = await call('session create', () =>
        consul.session.create({ name, ttl: `${ttlSeconds}s`, behavior: 'delete', lockdelay: '0s' }));
      this.currentId = ID;
      this.renewEvery(ID, (ttlSeconds * 1000) / 3);
      return ID;
    } catch (err) {
      this.current = null; // let the next call try again
      throw err;
    }
  }

  private renewEvery(id: string, intervalMs: number): void {
    clearInterval(this.timer);
    this.timer = setInterval(() => {
      void this.opts.call('session renew', async () => {
        try {
          await this.opts.consul.session.renew(id);
        } catch (err) {
          if ((err as { statusCode?: number }).statusCode === 404) this.forget(id);
          else throw err;
        }
      }).catch(() => {}); // a missed renewal is retried on the next tick
    }, intervalMs);
    this.timer.unref();
  }
}
