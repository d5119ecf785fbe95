// A small tmpfs for the fault suite's storage trouble: mounted on a fresh
// directory, made read-only (a remount: root ignores permission bits, so a
// chmod would not stop acmed running as root), made full (a filler file
// written until ENOSPC), and given back. Needs root. Every mount is also
// lazily unmounted when the process exits, so a crashed run leaves nothing
// mounted.
import { execFileSync } from 'node:child_process';
import { open, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { execFile } from 'node:child_process';

const run = promisify(execFile);
const mounted = new Set<string>();
let hooked = false;

function unmountAllNow(): void {
  for (const dir of mounted) {
    try {
      execFileSync('umount', ['-l', dir], { stdio: 'ignore' });
    } catch { /* already gone */ }
  }
  mounted.clear();
}

function installExitHook(): void {
  if (hooked) return;
  hooked = true;
  process.on('exit', unmountAllNow);
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    process.on(sig, () => {
      unmountAllNow();
      process.exit(sig === 'SIGINT' ? 130 : 143);
    });
  }
}

export interface Tmpfs {
  dir: string;
  readOnly(): Promise<void>;
  writable(): Promise<void>;
  /** Fills the file system with one file until ENOSPC; returns the bytes written. */
  fill(): Promise<number>;
  /** Removes the filler. */
  unfill(): Promise<void>;
  unmount(): Promise<void>;
}

export function canMount(): boolean {
  return typeof process.getuid === 'function' && process.getuid() === 0;
}

export async function mountTmpfs(dir: string, sizeKb: number): Promise<Tmpfs> {
  installExitHook();
  await run('mount', ['-t', 'tmpfs', '-o', `size=${sizeKb}k,mode=0755`, 'tmpfs', dir]);
  mounted.add(dir);
  const filler = join(dir, '.fault-filler');

  const remount = async (mode: 'ro' | 'rw') => {
    // A remount to read-only is refused (EBUSY) while a file is open for writing: try for a few seconds.
    let lastError: Error | undefined;
    for (let attempt = 0; attempt < 50; attempt++) {
      try {
        await run('mount', ['-o', `remount,${mode}`, dir]);
        return;
      } catch (err) {
        lastError = err as Error;
        await new Promise((r) => setTimeout(r, 100));
      }
    }
    throw new Error(`remount ${mode} of ${dir} failed: ${lastError?.message}`);
  };

  return {
    dir,
    readOnly: () => remount('ro'),
    writable: () => remount('rw'),
    async fill() {
      // Big writes first, then page-sized ones for what is left, until ENOSPC.
      const handle = await open(filler, 'w');
      let written = 0;
      try {
        for (const size of [1024 * 1024, 4096]) {
          const chunk = Buffer.alloc(size);
          for (;;) {
            try {
              const { bytesWritten } = await handle.write(chunk);
              written += bytesWritten;
              if (bytesWritten < size) break;
            } catch (err) {
              if ((err as NodeJS.ErrnoException).code === 'ENOSPC') break;
              throw err;
            }
          }
        }
      } finally {
        await handle.close();
      }
      return written;
    },
    unfill: () => rm(filler, { force: true }),
    async unmount() {
      if (!mounted.has(dir)) return;
      try {
        await run('umount', [dir]);
      } catch {
        await run('umount', ['-l', dir]);
      }
      mounted.delete(dir);
    },
  };
}
