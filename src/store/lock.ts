import fs from 'node:fs';
import os from 'node:os';
import { isAlive } from '../util/process.js';

/** Who holds a lock: enough to tell whether the holder is still alive. */
interface LockOwner {
  pid: number;
  host: string;
  since: string;
}

export type LockResult = { ok: true; release: () => void } | { ok: false; owner: LockOwner };

function readOwner(file: string): LockOwner | null {
  try {
    return JSON.parse(fs.readFileSync(file, 'utf8')) as LockOwner;
  } catch {
    return null; // vanished, or being written: treated as held until it can be read
  }
}

/**
 * Takes a lock file atomically (O_CREAT|O_EXCL): exactly one process succeeds. A lock left by a
 * dead process on this host is stale and taken over; a lock from another host (a shared results
 * directory on a cluster) is never stolen, since its holder's liveness cannot be checked from here.
 */
export function tryLock(file: string): LockResult {
  const me: LockOwner = { pid: process.pid, host: os.hostname(), since: new Date().toISOString() };
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      const fd = fs.openSync(file, 'wx');
      fs.writeSync(fd, JSON.stringify(me));
      fs.closeSync(fd);
      let released = false;
      return {
        ok: true,
        release: () => {
          if (released) return;
          released = true;
          const owner = readOwner(file);
          if (owner && owner.pid === me.pid && owner.host === me.host) fs.rmSync(file, { force: true });
        },
      };
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    }
    const owner = readOwner(file);
    if (!owner) {
      // Another process is between creating and writing the file: give it a moment.
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 20);
      continue;
    }
    if (owner.host !== os.hostname() || isAlive(owner.pid)) return { ok: false, owner };
    takeOverStale(file, owner);
  }
  const owner = readOwner(file);
  return { ok: false, owner: owner ?? { pid: -1, host: '?', since: '?' } };
}

/**
 * Removes a stale lock, under a second lock so that two processes that both saw it stale cannot
 * remove each other's fresh lock: whoever holds `.takeover` re-reads the owner before deleting.
 */
function takeOverStale(file: string, stale: LockOwner): void {
  const takeover = `${file}.takeover`;
  try {
    fs.closeSync(fs.openSync(takeover, 'wx'));
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    // A takeover lock is held for microseconds; an old one was left by a process killed mid-takeover.
    const age = Date.now() - (fs.statSync(takeover, { throwIfNoEntry: false })?.mtimeMs ?? Date.now());
    if (age > 10_000) fs.rmSync(takeover, { force: true });
    return;
  }
  try {
    const now = readOwner(file);
    if (now && now.pid === stale.pid && now.host === stale.host && now.since === stale.since)
      fs.rmSync(file, { force: true });
  } finally {
    fs.rmSync(takeover, { force: true });
  }
}

/** Takes a short-lived lock, waiting for it (up to `timeoutMs`), runs `fn`, releases. */
export function withLock<T>(file: string, fn: () => T, timeoutMs = 30_000): T {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const lock = tryLock(file);
    if (lock.ok) {
      try {
        return fn();
      } finally {
        lock.release();
      }
    }
    if (Date.now() > deadline) {
      throw new Error(
        `${file} is held by pid ${lock.owner.pid} on ${lock.owner.host} since ${lock.owner.since}; remove it if that process is gone`,
      );
    }
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 25);
  }
}
