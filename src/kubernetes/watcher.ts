/**
 * Keeps a list+watch of one kind of object running. The library's ListWatch
 * lists, watches from the list's resourceVersion, resumes from the last seen
 * resourceVersion when a watch ends, and lists again on 410 Gone; what it
 * leaves to the caller is an error (the API server unreachable, 5xx, 403):
 * it stops there. This restarts it after a growing pause, resuming from the
 * last resourceVersion. (A connection that died without a FIN is found by
 * the TCP keepalive the library sets on its sockets, and the API server ends
 * every watch after its request timeout anyway.)
 */
import { EventEmitter } from 'node:events';
import { type KubeConfig, type KubernetesListObject, type KubernetesObject, ListWatch, Watch } from '@kubernetes/client-node';
import type { Logger } from '../log.js';
import { describeApiError } from './client.js';

export interface WatcherOptions<T extends KubernetesObject> {
  kc: KubeConfig;
  /** The collection's path, e.g. /apis/networking.k8s.io/v1/ingresses. */
  path: string;
  list: () => Promise<KubernetesListObject<T>>;
  labelSelector?: string;
  log: Logger;
  /** What is watched, for the log ("Ingresses in all namespaces"). */
  what: string;
  /** Longest pause between attempts while the API server cannot be reached. */
  maxBackoffMs?: number;
}

const FIRST_BACKOFF_MS = 500;

export class Watcher<T extends KubernetesObject> extends EventEmitter<{ change: [T | undefined] }> {
  private readonly listWatch: ListWatch<T>;
  private backoffMs = FIRST_BACKOFF_MS;
  private retry?: NodeJS.Timeout;
  private failing = false;
  private stopped = false;

  constructor(private readonly opts: WatcherOptions<T>) {
    super();
    this.listWatch = new ListWatch<T>(opts.path, new Watch(opts.kc), opts.list, false, opts.labelSelector);
    for (const verb of ['add', 'update', 'delete'] as const) this.listWatch.on(verb, (obj) => this.emit('change', obj));
    this.listWatch.on('error', (err) => this.onError(err));
  }

  /** Starts watching; resolves once the first list has been loaded or has failed (then retried in the background). */
  async start(): Promise<void> {
    this.stopped = false;
    await this.listWatch.start().catch((err: unknown) => this.onError(err));
  }

  /** Every object seen, as of the last list and the events since. */
  items(): readonly T[] {
    return this.listWatch.list();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.retry);
    await this.listWatch.stop();
  }

  /** One list tells whether the API server is back; then the watch resumes from its resourceVersion. */
  private async reconnect(): Promise<void> {
    if (this.stopped) return;
    try {
      await this.opts.list();
    } catch (err) {
      this.onError(err);
      return;
    }
    this.failing = false;
    this.backoffMs = FIRST_BACKOFF_MS;
    this.opts.log.info({ watch: this.opts.what }, 'the Kubernetes API server answers again; watching resumes');
    await this.listWatch.start().catch((e: unknown) => this.onError(e));
    this.emit('change', undefined); // a pass over everything: what changed while away may not be in the events
  }

  private onError(err: unknown): void {
    if (this.stopped) return;
    const maxMs = this.opts.maxBackoffMs ?? 10_000;
    if (!this.failing) this.opts.log.warn({ watch: this.opts.what, err: describeApiError(err) }, 'cannot watch the Kubernetes API server; retrying');
    else this.opts.log.debug({ watch: this.opts.what, err: describeApiError(err), retryMs: this.backoffMs }, 'Kubernetes watch still failing');
    this.failing = true;
    clearTimeout(this.retry);
    this.retry = setTimeout(() => void this.reconnect(), this.backoffMs);
    this.retry.unref();
    this.backoffMs = Math.min(this.backoffMs * 2, maxMs);
  }
}
