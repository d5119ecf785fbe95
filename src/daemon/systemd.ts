/**
 * systemd integration without a native module: readiness and reload state go
 * through the `systemd-notify` tool (the unit sets NotifyAccess=all so its
 * messages count), and socket activation hands port 80 over as file
 * descriptors from 3 on (LISTEN_FDS). Outside systemd (no NOTIFY_SOCKET)
 * nothing is sent.
 */
import { execFile } from 'node:child_process';

/** The first descriptor systemd passes (SD_LISTEN_FDS_START). */
const LISTEN_FDS_START = 3;

export function notifySystemd(...states: string[]): Promise<void> {
  if (!process.env.NOTIFY_SOCKET) return Promise.resolve();
  return new Promise((resolve) => {
    execFile('systemd-notify', [`--pid=${process.pid}`, ...states], { timeout: 5_000 }, () => resolve());
  });
}

/** Descriptors passed by socket activation for this process, or [] when none. */
export function activationFds(env: NodeJS.ProcessEnv = process.env, pid = process.pid): number[] {
  const count = Number(env.LISTEN_FDS);
  if (!Number.isInteger(count) || count <= 0) return [];
  if (env.LISTEN_PID && Number(env.LISTEN_PID) !== pid) return [];
  return Array.from({ length: count }, (_, i) => LISTEN_FDS_START + i);
}
