/**
 * Downloading a dataset's files into bnx's cache directory: node's http(s) with redirects, a
 * temporary file renamed into place only when complete (an interrupted download never looks like a
 * dataset), and `.tar.gz` archives unpacked by a small ustar reader.
 *
 * Dataset loading is synchronous, so `downloadSync` runs this module as a child process
 * (`node download.js URL DEST [member ...]`) and waits for it.
 */
import fs from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { gunzipSync } from 'node:zlib';
import { writeFileAtomic } from '../util/files.js';

const MAX_REDIRECTS = 5;
/** Give up on a silent connection after this long (ms); a slow but moving download is fine. */
const IDLE_TIMEOUT_MS = 30_000;

/** Unique temporary name next to `dest`, so the final rename stays on one file system. */
function tempName(dest: string): string {
  return path.join(path.dirname(dest), `.${path.basename(dest)}.${process.pid}.${Date.now()}.part`);
}

/** Streams `url` into `dest` (following redirects), renaming a complete temporary file into place. */
export async function download(url: string, dest: string, redirects = 0): Promise<void> {
  fs.mkdirSync(path.dirname(dest), { recursive: true });
  const tmp = tempName(dest);
  try {
    await new Promise<void>((resolve, reject) => {
      const get = url.startsWith('https:') ? https.get : http.get;
      const req = get(url, { headers: { 'user-agent': 'bnx' } }, (res) => {
        const status = res.statusCode ?? 0;
        if (status >= 300 && status < 400 && res.headers.location) {
          res.resume();
          if (redirects >= MAX_REDIRECTS) return reject(new Error(`${url}: more than ${MAX_REDIRECTS} redirects`));
          const next = new URL(res.headers.location, url).toString();
          download(next, dest, redirects + 1).then(resolve, reject);
          return;
        }
        if (status !== 200) {
          res.resume();
          return reject(new Error(`${url}: HTTP ${status}`));
        }
        const out = fs.createWriteStream(tmp);
        res.pipe(out);
        res.on('error', reject);
        out.on('error', reject);
        out.on('finish', () => {
          const expected = Number(res.headers['content-length'] ?? NaN);
          const got = fs.statSync(tmp).size;
          if (Number.isFinite(expected) && got !== expected)
            reject(new Error(`${url}: got ${got} of ${expected} bytes`));
          else {
            fs.renameSync(tmp, dest);
            resolve();
          }
        });
      });
      req.setTimeout(IDLE_TIMEOUT_MS, () => req.destroy(new Error(`${url}: no data for ${IDLE_TIMEOUT_MS / 1000} s`)));
      req.on('error', reject);
    });
  } finally {
    fs.rmSync(tmp, { force: true });
  }
}

/**
 * The regular files of a (gzipped) ustar archive whose base names are in `wanted`, as
 * name -> contents. Enough for dataset archives; links, long names and sparse files are ignored.
 */
export function untarMembers(archive: Uint8Array, wanted: ReadonlySet<string>): Map<string, Uint8Array> {
  const buf = Buffer.from(archive.buffer, archive.byteOffset, archive.byteLength);
  const tar = buf.length >= 2 && buf[0] === 0x1f && buf[1] === 0x8b ? gunzipSync(buf) : buf;
  const out = new Map<string, Uint8Array>();
  let off = 0;
  while (off + 512 <= tar.length) {
    const header = tar.subarray(off, off + 512);
    if (header.every((b) => b === 0)) break;
    const field = (start: number, len: number) =>
      header
        .subarray(start, start + len)
        .toString('latin1')
        .replace(/\0.*$/s, '');
    const name = field(0, 100);
    const prefix = field(345, 155);
    const size = parseInt(field(124, 12).trim() || '0', 8);
    const type = field(156, 1);
    const full = prefix ? `${prefix}/${name}` : name;
    off += 512;
    if ((type === '0' || type === '') && wanted.has(path.posix.basename(full))) {
      out.set(path.posix.basename(full), tar.subarray(off, off + size));
    }
    off += Math.ceil(size / 512) * 512;
  }
  return out;
}

/**
 * Downloads `url` into directory `dir`. With `members`, the file is a tar(.gz) archive and only
 * those members (by base name) are written into `dir`; otherwise it is saved as `dir/<name>`.
 */
export async function fetchInto(url: string, dir: string, name: string, members: string[]): Promise<void> {
  const dest = path.join(dir, name);
  await download(url, dest);
  if (members.length === 0) return;
  const found = untarMembers(fs.readFileSync(dest), new Set(members));
  const missing = members.filter((m) => !found.has(m));
  if (missing.length > 0) throw new Error(`${url}: the archive lacks ${missing.join(', ')}`);
  for (const [m, data] of found) writeFileAtomic(path.join(dir, m), data);
  fs.rmSync(dest, { force: true });
}

/**
 * Runs `fetchInto` in a child process and waits: null on success, else the child's one-line reason.
 */
export function downloadSync(url: string, dir: string, name: string, members: string[] = []): string | null {
  const res = spawnSync(process.execPath, [fileURLToPath(import.meta.url), url, dir, name, ...members], {
    encoding: 'utf8',
  });
  if (res.error) return res.error.message;
  if (res.status === 0) return null;
  const lines = (res.stderr ?? '').trim().split('\n').filter(Boolean);
  return lines[lines.length - 1] ?? `exit code ${res.status}`;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === path.resolve(process.argv[1])) {
  const [url, dir, name, ...members] = process.argv.slice(2);
  fetchInto(url, dir, name, members).catch((e: unknown) => {
    process.stderr.write(`${(e as Error).message}\n`);
    process.exit(1);
  });
}
