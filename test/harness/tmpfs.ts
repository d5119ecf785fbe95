// A small tmpfs for the fault suite's storage trouble: mounted on a fresh
// directory, made read-only (a remount: root ignores permission bits, so a
// chmod would not stop acmed running as root), made full (a filler file
// written until ENOSPC, after shrinking the file system to what it holds so
// that no write slips in between), and given back. Needs root. Every mount is also
// lazily unmounted when the process exits, so a crashed run leaves nothing
// mounted.
import { execFile, execFileSync } from 'node:child_process';
import { open, rm, statfs } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';

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
  /**
   * From read-only to writable and full with no moment between the two in
   * which a write could land: the remount to read-write also shrinks the
   * file system to what it holds plus a few pages, which the filler takes.
   */
  writableButFull(): Promise<number>;
  /** Removes the filler (and gives the file system its size back). */
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

  const fill = async (): Promise<number> => {
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
  };

  return {
    dir,
    readOnly: () => remount('ro'),
    writable: () => remount('rw'),
    fill,
    async writableButFull() {
      const st = await statfs(dir);
      const usedKb = Math.ceil(((st.blocks - st.bfree) * st.bsize) / 1024);
      await run('mount', ['-o', `remount,rw,size=${usedKb + 64}k`, dir]);
      return fill();
    },
    async unfill() {
      await rm(filler, { force: true });
      await run('mount', ['-o', `remount,size=${sizeKb}k`, dir]);
    },
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
