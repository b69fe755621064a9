import fs from 'node:fs';
import os from 'node:os';
import { randomBytes } from 'node:crypto';
import { isAlive } from '../util/process.js';
import { writeFileExclusive } from '../util/files.js';

/**
 * Lock files for results folders that several processes, on one host or on many hosts sharing a
 * file system (NFS, Lustre), write at once: `<sweep>/.sweep.lock` (sweep.json, summary.csv) and
 * `<run>/.lock` (the process training the run).
 *
 * - A lock file is created whole: its content is written to a temporary file that is then
 *   link()ed to the lock's name. link() fails if the name exists, atomically, on every NFS version
 *   (O_EXCL is not reliable over old NFS clients, and flock/fcntl locks depend on the NFS lock
 *   daemon), and the lock is never seen empty or half-written.
 * - It names its holder (host, pid), a random token, and a lease: the holder refreshes the file's
 *   mtime every LEASE/12 (5 s) from a timer while it holds the lock. A lock not refreshed for
 *   its lease (60 s) is stale: its holder is dead, or its host is. The lease is 12 refresh periods
 *   because the timer needs the event loop, which a long synchronous TensorFlow call blocks
 *   (measured: at most 6 s, loading a dataset or evaluating a cnn on 10,000 images; see
 *   docs/clusters-slurm.md), and because hosts' clocks differ by a little (the age is this host's
 *   clock minus the mtime the holder set with its own).
 * - On the holder's own host a lock is stale at once when the holder's pid is dead (taken over
 *   silently: the ordinary aftermath of a kill); a lock whose content cannot be read (empty or
 *   garbage: left by a full disk, or by an older bnx) is stale at once too, and a lapsed lease
 *   after its timeout; both are said in one line. A fresh lease of another host is never taken over.
 * - Taking over a stale lock (removing it) happens under a second, short-lived lock
 *   (`<lock>.takeover`), and only if the lock is still the one that was found stale (same inode,
 *   mtime and content): two processes that both found it stale cannot remove each other's new lock.
 */

/** Who holds a lock, as its file says. */
export interface LockOwner {
  host: string;
  pid: number;
  /** When the lock was taken (ISO time, the holder's clock). */
  since: string;
  /** Milliseconds after its last refresh (the file's mtime) that the lock goes stale. */
  lease_ms: number;
  /** Random: tells this holding from an earlier one of the same process. */
  token: string;
}

/** The lock's lease: BNX_LOCK_LEASE_MS (tests only: a short lease), else 60 s. */
export function leaseMs(): number {
  const v = Number(process.env.BNX_LOCK_LEASE_MS);
  return Number.isFinite(v) && v >= 200 ? v : 60_000;
}

/** This host's name in lock files: BNX_HOSTNAME (tests only: two processes as two hosts), else the host name. */
export function lockHost(): string {
  return process.env.BNX_HOSTNAME || os.hostname();
}

/** A takeover lock older than this was left by a process that died mid-takeover (a takeover takes microseconds). */
const TAKEOVER_STALE_MS = 10_000;

export type LockState =
  | { state: 'free' }
  | { state: 'held'; owner: LockOwner; ageMs: number }
  /** `routine`: its holder's pid is dead on this host (a kill, a crash): certain, and the usual aftermath of a kill. */
  | { state: 'stale'; owner: LockOwner | null; why: string; seen: Seen; routine: boolean };

/** What identifies one lock file: a takeover removes the file only if it is still this one. */
interface Seen {
  ino: number;
  mtimeMs: number;
  text: string;
}

const seconds = (ms: number) => `${(ms / 1000).toFixed(1)} s`;

function parseOwner(text: string): LockOwner | null {
  try {
    const o = JSON.parse(text) as Partial<LockOwner>;
    if (typeof o.pid !== 'number' || typeof o.host !== 'string') return null;
    // A lock written before leases existed: the default lease, no token.
    return {
      host: o.host,
      pid: o.pid,
      since: typeof o.since === 'string' ? o.since : '?',
      lease_ms: typeof o.lease_ms === 'number' && o.lease_ms > 0 ? o.lease_ms : 60_000,
      token: typeof o.token === 'string' ? o.token : '',
    };
  } catch {
    return null;
  }
}

/** Reads a lock file: free, held (with its owner and the age of its last refresh), or stale (and why). */
export function inspectLock(file: string): LockState {
  let fd: number;
  try {
    fd = fs.openSync(file, 'r');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return { state: 'free' };
    throw e;
  }
  let seen: Seen;
  try {
    // fstat of an open file: NFS revalidates attributes at open (close-to-open), a bare stat may be cached.
    const st = fs.fstatSync(fd);
    seen = { ino: st.ino, mtimeMs: st.mtimeMs, text: fs.readFileSync(fd, 'utf8') };
  } finally {
    fs.closeSync(fd);
  }
  const owner = parseOwner(seen.text);
  if (!owner) {
    const what = seen.text.trim() === '' ? 'an empty file' : 'not a lock record';
    return { state: 'stale', owner: null, why: `its owner cannot be read: ${what}`, seen, routine: false };
  }
  if (owner.host === lockHost() && !isAlive(owner.pid))
    return { state: 'stale', owner, why: `pid ${owner.pid} on ${owner.host} is gone`, seen, routine: true };
  const ageMs = Date.now() - seen.mtimeMs;
  if (ageMs > owner.lease_ms)
    return {
      state: 'stale',
      owner,
      why: `pid ${owner.pid} on ${owner.host} has not renewed its ${seconds(owner.lease_ms)} lease for ${seconds(ageMs)}`,
      seen,
      routine: false,
    };
  return { state: 'held', owner, ageMs };
}

/** Not taken: `owner` holds it (null: other processes kept taking it in turn while this one tried). */
export type LockResult = { ok: true; release: () => void } | { ok: false; owner: LockOwner | null };

export interface LockOptions {
  /**
   * Told, in one line, when a stale lock is taken over. Default: a line on stderr, except for the
   * lock of a dead pid on this host (the rerun after a kill -9 or a crash: the run's own line says
   * it resumes); a lapsed lease (a judgement across hosts) and an unreadable lock are always said.
   */
  onStale?: (line: string) => void;
}

const staleToStderr = (line: string) => process.stderr.write(`bnx: ${line}\n`);

/**
 * Takes a lock file if it is free or stale (see the top of this file); exactly one process
 * succeeds. While held, a timer (unref'd: it never keeps the process alive) refreshes the lease;
 * `release` stops it and removes the file if it is still this holder's.
 */
export function tryLock(file: string, opts: LockOptions = {}): LockResult {
  const lease = leaseMs();
  const me: LockOwner = {
    host: lockHost(),
    pid: process.pid,
    since: new Date().toISOString(),
    lease_ms: lease,
    token: randomBytes(8).toString('hex'),
  };
  const text = `${JSON.stringify(me)}\n`;
  for (let attempt = 0; attempt < 5; attempt++) {
    if (writeFileExclusive(file, text)) return held(file, me, lease);
    const found = inspectLock(file);
    if (found.state === 'held') return { ok: false, owner: found.owner };
    if (found.state === 'stale' && removeStale(file, found.seen)) {
      const tell = opts.onStale ?? (found.routine ? null : staleToStderr);
      tell?.(`stale lock ${file} (${found.why}): taken over`);
    }
    // Free by now, or another process is taking the stale lock over: try again shortly.
    if (attempt > 0) sleepMs(10 * attempt);
  }
  const found = inspectLock(file);
  return { ok: false, owner: found.state === 'held' ? found.owner : null };
}

function held(file: string, me: LockOwner, lease: number): LockResult {
  // The lease counts from this host's clock: set the mtime (the file server may have set its own).
  touch(file);
  const refresh = () => {
    try {
      // Refresh only while the lock is still ours (it is never taken while the lease is fresh).
      if (parseOwner(fs.readFileSync(file, 'utf8'))?.token !== me.token) return stop();
      touch(file);
    } catch {
      stop(); // removed (by hand), or the file system is gone: nothing left to refresh
    }
  };
  const timer = setInterval(refresh, Math.max(50, Math.floor(lease / 12)));
  timer.unref();
  let released = false;
  const stop = () => clearInterval(timer);
  return {
    ok: true,
    release: () => {
      if (released) return;
      released = true;
      stop();
      try {
        if (parseOwner(fs.readFileSync(file, 'utf8'))?.token === me.token) fs.rmSync(file, { force: true });
      } catch {
        // Gone already.
      }
    },
  };
}

function touch(file: string): void {
  const now = new Date();
  fs.utimesSync(file, now, now);
}

/**
 * Removes a lock found stale, under `<file>.takeover`, if it is still the same file (same inode,
 * mtime and content): if its holder refreshed it or another process replaced it meanwhile, it
 * stays. Returns whether it was removed.
 */
function removeStale(file: string, seen: Seen): boolean {
  const takeover = `${file}.takeover`;
  const mine = `${JSON.stringify({ host: lockHost(), pid: process.pid, since: new Date().toISOString() })}\n`;
  if (!writeFileExclusive(takeover, mine)) {
    const st = fs.statSync(takeover, { throwIfNoEntry: false });
    if (st && Date.now() - st.mtimeMs > TAKEOVER_STALE_MS) fs.rmSync(takeover, { force: true });
    return false;
  }
  try {
    const now = inspectLock(file);
    if (
      now.state === 'stale' &&
      now.seen.ino === seen.ino &&
      now.seen.mtimeMs === seen.mtimeMs &&
      now.seen.text === seen.text
    ) {
      fs.rmSync(file, { force: true });
      return true;
    }
    return false;
  } finally {
    fs.rmSync(takeover, { force: true });
  }
}

function sleepMs(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

/** A lock stayed held by a live holder for as long as `withLock` waits. */
export class LockBusyError extends Error {
  override name = 'LockBusyError';
}

/**
 * Takes a short-lived lock, waiting for it (up to `timeoutMs`), runs `fn` (synchronous: the lease
 * timer cannot run during it, so it must take well under the lease), releases.
 */
export function withLock<T>(file: string, fn: () => T, timeoutMs = 30_000, opts: LockOptions = {}): T {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const lock = tryLock(file, opts);
    if (lock.ok) {
      try {
        return fn();
      } finally {
        lock.release();
      }
    }
    if (Date.now() > deadline) {
      const o = lock.owner;
      throw new LockBusyError(
        o
          ? `${file} is held by pid ${o.pid} on ${o.host} since ${o.since} and its lease is being renewed; ` +
              `waited ${seconds(timeoutMs)} (if that process is gone, the lock goes stale ${seconds(o.lease_ms)} after its last renewal)`
          : `${file} was taken by other processes in turn for ${seconds(timeoutMs)}; try again`,
      );
    }
    sleepMs(25);
  }
}
