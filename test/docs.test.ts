import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { before, describe, it } from 'node:test';
import { CommanderError } from 'commander';
import { buildProgram } from '../src/cli/main.js';
import { InputError } from '../src/util/errors.js';
import { bnx, ROOT } from './helpers.js';

/**
 * The documentation stays true: README.md, ARCHITECTURE.md (when present) and docs/*.md.
 *
 * - Links: every relative link and image target exists. Anchors are checked against the target
 *   file's headings, slugged as GitHub does (`#speed-after-the-layout-invariance-change`).
 * - Pages: every docs/*.md links back to the README and is reachable from it by links.
 * - Commands: every `$ ` line in a fenced block is a command a reader may copy.
 *   - bnx (`./bin/bnx.js`, `bin/bnx.js` or `bnx`): the command must exist and every option on the
 *     line must appear in `bnx <command> --help`. For `run`, `plan` and `export-job`,
 *     `bnx plan <spec> --set ...` with the line's spec and overrides must exit 0; if the next line
 *     of the block starts with `bnx: `, the line is a bad-input example, and `bnx plan` must exit 2
 *     with exactly that line on stderr.
 *   - npm: `npm start`, `npm test` and `npm run X` must be package.json scripts; `npm ci`, `npm
 *     install` and `npm link` are npm's own. A program given by a path (`scripts/x.sh`, `./x`) must
 *     exist. Other programs (head, tensorboard, sbatch, kubectl, node) are not checked.
 *   Lines are split on `&&`, `||`, `;` and `|`; leading `VAR=value` assignments are dropped.
 * - Help blocks: a block whose first line is `$ ./bin/bnx.js [<command>] --help` shows exactly what
 *   that prints (scripts/docs-help.mjs rewrites them).
 * - Library: every name a ts block imports from 'bnx' is exported by the package.
 *
 * Speed: spawning `bnx` costs about 0.3 s of CPU a time, and the docs hold some 40 commands, so the
 * help texts and the plans run in this process, through the CLI's own command tree (`buildProgram`,
 * what bin/bnx.js runs): `bnx plan` is parsed and run as the executable runs it, its bad input
 * reported as `main` reports it (`bnx: <message>`, exit 2). One spawned `bnx --help` checks that the
 * executable prints what the tree in this process prints. About 2 s in all, most of it loading the
 * library for the import check.
 */

const DOCS_DIR = path.join(ROOT, 'docs');
const FILES = [
  path.join(ROOT, 'README.md'),
  ...(fs.existsSync(path.join(ROOT, 'ARCHITECTURE.md')) ? [path.join(ROOT, 'ARCHITECTURE.md')] : []),
  ...fs
    .readdirSync(DOCS_DIR)
    .filter((f) => f.endsWith('.md'))
    .sort()
    .map((f) => path.join(DOCS_DIR, f)),
];
const rel = (file: string) => path.relative(ROOT, file);

// ---- Markdown: fenced blocks, prose, headings, links ----

interface Block {
  info: string;
  /** The block's lines (without the fences), with their 1-based line numbers in the file. */
  lines: { text: string; line: number }[];
}

interface Doc {
  file: string;
  blocks: Block[];
  /** The text outside fenced blocks (fenced lines blanked, so line numbers stay). */
  prose: string;
  anchors: Set<string>;
}

const FENCE = /^\s*(`{3,}|~{3,})\s*([^`\s]*)/;

function parseDoc(file: string): Doc {
  const lines = fs.readFileSync(file, 'utf8').split('\n');
  const blocks: Block[] = [];
  const prose: string[] = [];
  let open: { fence: string; block: Block } | null = null;
  lines.forEach((text, i) => {
    const m = FENCE.exec(text);
    if (open) {
      prose.push('');
      if (m && m[1][0] === open.fence[0] && m[1].length >= open.fence.length && text.trim() === m[1]) open = null;
      else open.block.lines.push({ text, line: i + 1 });
    } else if (m) {
      prose.push('');
      const block: Block = { info: m[2], lines: [] };
      blocks.push(block);
      open = { fence: m[1], block };
    } else {
      prose.push(text);
    }
  });
  assert.equal(open, null, `${rel(file)}: a fenced block is not closed`);
  const text = prose.join('\n');
  return { file, blocks, prose: text, anchors: headingAnchors(text) };
}

/** Inline code spans removed (links inside them are code, not links). */
function withoutCode(text: string): string {
  return text.replace(/(`+)[\s\S]*?\1/g, (span) => span.replace(/[^\n]/g, ' '));
}

/** GitHub's heading ids: the rendered text, lower-cased, punctuation dropped, spaces to '-', duplicates numbered. */
function headingAnchors(prose: string): Set<string> {
  const anchors = new Set<string>();
  const seen = new Map<string, number>();
  for (const line of prose.split('\n')) {
    const m = /^ {0,3}#{1,6}\s+(.*?)\s*#*\s*$/.exec(line);
    if (!m) continue;
    const textOnly = m[1]
      .replace(/!?\[([^\]]*)\]\([^)]*\)/g, '$1')
      .replace(/<[^>]+>/g, '')
      .replace(/[`*]/g, '');
    const base = textOnly
      .toLowerCase()
      .replace(/[^\p{L}\p{M}\p{N}\p{Pc} -]/gu, '')
      .replace(/ /g, '-');
    const n = seen.get(base) ?? 0;
    seen.set(base, n + 1);
    anchors.add(n === 0 ? base : `${base}-${n}`);
  }
  for (const m of prose.matchAll(/<a\s+(?:name|id)="([^"]+)"/g)) anchors.add(m[1]);
  return anchors;
}

interface Link {
  target: string;
  line: number;
}

function links(doc: Doc): Link[] {
  const text = withoutCode(doc.prose);
  const lineOf = (index: number) => text.slice(0, index).split('\n').length;
  const out: Link[] = [];
  // [text](target "title") and ![alt](target); the text may hold one level of brackets.
  for (const m of text.matchAll(
    /!?\[(?:[^[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+(?:"[^"]*"|'[^']*'|\([^)]*\)))?\s*\)/g,
  )) {
    out.push({ target: m[1], line: lineOf(m.index ?? 0) });
  }
  // [label]: target
  for (const m of text.matchAll(/^ {0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s|$)/gm))
    out.push({ target: m[1], line: lineOf(m.index ?? 0) });
  // <img src="..."> and <a href="...">
  for (const m of text.matchAll(/\b(?:src|href)="([^"]+)"/g)) out.push({ target: m[1], line: lineOf(m.index ?? 0) });
  return out;
}

const isExternal = (target: string) => /^[a-z][a-z0-9+.-]*:/i.test(target);

// ---- Shell lines ----

type Token = { word: string } | { op: string };

/** Splits a shell line into words and operators: quotes, backslashes, comments; no expansions. */
function shellTokens(line: string): Token[] {
  const tokens: Token[] = [];
  let word: string | null = null;
  const end = () => {
    if (word !== null) tokens.push({ word });
    word = null;
  };
  for (let i = 0; i < line.length; i++) {
    const c = line[i];
    if (c === "'") {
      const j = line.indexOf("'", i + 1);
      if (j < 0) throw new Error(`unclosed ' in: ${line}`);
      word = (word ?? '') + line.slice(i + 1, j);
      i = j;
    } else if (c === '"') {
      let j = i + 1;
      let s = '';
      for (; j < line.length && line[j] !== '"'; j++) {
        if (line[j] === '\\' && j + 1 < line.length && '"\\$`'.includes(line[j + 1])) s += line[++j];
        else s += line[j];
      }
      if (j >= line.length) throw new Error(`unclosed " in: ${line}`);
      word = (word ?? '') + s;
      i = j;
    } else if (c === '\\' && i + 1 < line.length) {
      word = (word ?? '') + line[++i];
    } else if (/\s/.test(c)) {
      end();
    } else if (c === '#' && word === null) {
      break;
    } else if ('&|;'.includes(c)) {
      end();
      const two = line.slice(i, i + 2);
      const op = two === '&&' || two === '||' ? two : c;
      tokens.push({ op });
      i += op.length - 1;
    } else {
      word = (word ?? '') + c;
    }
  }
  end();
  return tokens;
}

/** The simple commands of a line, each as its words, `VAR=value` prefixes dropped. */
function commands(line: string): string[][] {
  const out: string[][] = [[]];
  for (const t of shellTokens(line)) {
    if ('op' in t) out.push([]);
    else out[out.length - 1].push(t.word);
  }
  return out
    .map((words) => {
      let k = 0;
      while (k < words.length && /^[A-Za-z_][A-Za-z0-9_]*=/.test(words[k])) k++;
      return words.slice(k);
    })
    .filter((words) => words.length > 0);
}

interface Prompt {
  doc: Doc;
  line: number;
  text: string;
  /** The block's next line when it is not a prompt (the command's first output line), else null. */
  next: string | null;
}

function prompts(doc: Doc): Prompt[] {
  const out: Prompt[] = [];
  for (const block of doc.blocks) {
    for (let k = 0; k < block.lines.length; k++) {
      const m = /^\s*\$ (.*)$/.exec(block.lines[k].text);
      if (!m) continue;
      let text = m[1];
      const line = block.lines[k].line;
      while (text.endsWith('\\') && k + 1 < block.lines.length)
        text = `${text.slice(0, -1)} ${block.lines[++k].text.trim()}`;
      const after = block.lines[k + 1]?.text;
      out.push({ doc, line, text, next: after !== undefined && !/^\s*\$ /.test(after) ? after : null });
    }
  }
  return out;
}

// ---- The CLI ----

interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/**
 * `bnx <args>` for a command that neither trains nor loads TensorFlow (plan), run in this process
 * through a fresh command tree: exit 0, or 2 with the line `main` prints for bad input.
 */
async function runInProcess(args: string[]): Promise<CliResult> {
  const program = buildProgram();
  let stdout = '';
  let stderr = '';
  const output = { writeOut: (s: string) => (stdout += s), writeErr: (s: string) => (stderr += s) };
  program.configureOutput(output);
  for (const c of program.commands) c.configureOutput(output);
  const log = console.log;
  console.log = (...xs: unknown[]) => (stdout += `${xs.map(String).join(' ')}\n`);
  try {
    await program.parseAsync(['node', 'bnx', ...args]);
    return { code: 0, stdout, stderr };
  } catch (e) {
    if (e instanceof CommanderError) return { code: e.exitCode === 0 ? 0 : 2, stdout, stderr };
    if (e instanceof InputError) return { code: 2, stdout, stderr: `${stderr}bnx: ${e.message}\n` };
    return { code: 1, stdout, stderr: `${stderr}${(e as Error).stack ?? String(e)}\n` };
  } finally {
    console.log = log;
  }
}

/** The options of a help text: flag -> whether it takes a value. */
function helpOptions(help: string): Map<string, boolean> {
  const options = new Map<string, boolean>();
  const section = help.split(/^Options:$/m)[1]?.split(/^\S.*:$/m)[0] ?? '';
  for (const line of section.split('\n')) {
    const m = /^ {2}(-\S.*?)(?: {2,}|$)/.exec(line);
    if (!m) continue;
    for (const part of m[1].split(/,\s*/)) {
      const [flag, arg] = part.split(/\s+/, 2);
      options.set(flag, arg !== undefined && arg.startsWith('<'));
    }
  }
  return options;
}

/** The command names of `bnx --help`. */
function helpCommands(help: string): string[] {
  const section = help.split(/^Commands:$/m)[1] ?? '';
  return [...section.matchAll(/^ {2}([a-z][a-z-]*)/gm)].map((m) => m[1]);
}

const BNX_PROGRAMS = new Set(['./bin/bnx.js', 'bin/bnx.js', 'bnx']);
const NPM_OWN = new Set(['ci', 'install', 'i', 'link']);
const PLANNED = new Set(['run', 'plan', 'export-job']);

interface Plan {
  spec: string;
  sets: string[];
  /** The bad-input line the docs show, or null when the plan must succeed. */
  error: string | null;
  where: string;
}

const docs = FILES.map(parseDoc);
const byFile = new Map(docs.map((d) => [d.file, d]));
const help = new Map<string, string>();

describe('documentation (README.md, ARCHITECTURE.md, docs/*.md)', () => {
  before(() => {
    // Specs and paths in the docs are relative to the repository, as for a reader in a checkout.
    process.chdir(ROOT);
    // The executable prints the help of the command tree this process builds.
    const top = bnx(['--help']);
    assert.equal(top.code, 0, top.stderr);
    const program = buildProgram();
    assert.equal(top.stdout, program.helpInformation(), 'bin/bnx.js --help and buildProgram() agree');
    help.set('', top.stdout);
    // `bnx help <command>` is commander's; its own help is the top-level one.
    const names = helpCommands(top.stdout).filter((n) => n !== 'help');
    assert.ok(names.includes('run') && names.includes('plan'), `bnx --help lists its commands:\n${top.stdout}`);
    for (const name of names) {
      const command = program.commands.find((c) => c.name() === name);
      assert.ok(command, `bnx ${name}`);
      help.set(name, command.helpInformation());
    }
  });

  it('every relative link and image points at a file (and heading) that exists', () => {
    const broken: string[] = [];
    for (const doc of docs) {
      for (const { target, line } of links(doc)) {
        if (isExternal(target)) continue;
        const [pathPart, anchor] = target.split('#', 2) as [string, string | undefined];
        const where = `${rel(doc.file)}:${line}: ${target}`;
        const file = pathPart === '' ? doc.file : path.resolve(path.dirname(doc.file), decodeURIComponent(pathPart));
        if (!fs.existsSync(file)) {
          // ARCHITECTURE.md is written with the code's restructure; until then a link to it is expected.
          if (path.relative(ROOT, file) === 'ARCHITECTURE.md') continue;
          broken.push(`${where} (no such file)`);
          continue;
        }
        if (anchor === undefined || anchor === '' || !file.endsWith('.md')) continue;
        const target_ = byFile.get(file) ?? parseDoc(file);
        if (!target_.anchors.has(anchor)) broken.push(`${where} (no heading #${anchor} in ${rel(file)})`);
      }
    }
    assert.deepEqual(broken, []);
  });

  it('every docs page links back to the README and is reachable from it', () => {
    const readme = path.join(ROOT, 'README.md');
    const linked = (doc: Doc) =>
      new Set(
        links(doc)
          .filter((l) => !isExternal(l.target))
          .map((l) => l.target.split('#')[0])
          .filter((p) => p !== '')
          .map((p) => path.resolve(path.dirname(doc.file), decodeURIComponent(p))),
      );
    const problems: string[] = [];
    for (const doc of docs.filter((d) => path.dirname(d.file) === DOCS_DIR)) {
      if (!linked(doc).has(readme)) problems.push(`${rel(doc.file)} does not link to ../README.md`);
    }
    const reached = new Set([readme]);
    const queue = [readme];
    while (queue.length > 0) {
      const doc = byFile.get(queue.pop() as string);
      if (!doc) continue;
      for (const f of linked(doc)) {
        if (f.endsWith('.md') && !reached.has(f)) {
          reached.add(f);
          queue.push(f);
        }
      }
    }
    for (const doc of docs)
      if (!reached.has(doc.file)) problems.push(`${rel(doc.file)} is not reachable from README.md`);
    assert.deepEqual(problems, []);
  });

  it('every `$` command is still accepted: commands, options, specs and overrides, npm scripts, paths', async () => {
    const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as {
      scripts?: Record<string, string>;
    };
    const scripts = pkg.scripts ?? {};
    const problems: string[] = [];
    const plans = new Map<string, Plan>();
    let checked = 0;
    for (const doc of docs) {
      for (const p of prompts(doc)) {
        const where = `${rel(doc.file)}:${p.line}: $ ${p.text}`;
        let parsed: string[][];
        try {
          parsed = commands(p.text);
        } catch (e) {
          problems.push(`${where}: ${(e as Error).message}`);
          continue;
        }
        for (const words of parsed) {
          const [program, ...args] = words;
          if (BNX_PROGRAMS.has(program)) {
            checked++;
            const problem = checkBnx(args, p, where, plans);
            if (problem) problems.push(`${where}: ${problem}`);
          } else if (program === 'npm') {
            checked++;
            const [sub, name] = args;
            if (sub === 'start' || sub === 'test' || sub === 't') {
              const script = sub === 't' ? 'test' : sub;
              if (!(script in scripts)) problems.push(`${where}: package.json has no "${script}" script`);
            } else if (sub === 'run' || sub === 'run-script') {
              if (name === undefined || !(name in scripts))
                problems.push(`${where}: package.json has no "${name}" script`);
            } else if (!NPM_OWN.has(sub)) {
              problems.push(
                `${where}: npm ${sub} is neither a script nor one of npm's own commands this test knows (${[...NPM_OWN].join(', ')})`,
              );
            }
          } else if (program.includes('/')) {
            checked++;
            if (!fs.existsSync(path.resolve(ROOT, program))) problems.push(`${where}: ${program} does not exist`);
          }
        }
      }
    }
    assert.ok(checked > 20, `only ${checked} commands found: is the \`$ \` convention still used?`);
    for (const plan of plans.values()) {
      const res = await runInProcess(['plan', plan.spec, ...plan.sets.flatMap((s) => ['--set', s])]);
      if (plan.error === null) {
        if (res.code !== 0) problems.push(`${plan.where}: bnx plan exited ${res.code}: ${res.stderr.trim()}`);
      } else if (res.code !== 2 || res.stderr.trim() !== plan.error.trim()) {
        problems.push(
          `${plan.where}: the docs show the error\n    ${plan.error.trim()}\n  bnx plan exited ${res.code} with\n    ${res.stderr.trim()}`,
        );
      }
    }
    assert.deepEqual(problems, []);
  });

  it('the --help blocks show what the CLI prints', () => {
    const problems: string[] = [];
    let blocks = 0;
    for (const doc of docs) {
      for (const block of doc.blocks) {
        const m = /^\$ \.\/bin\/bnx\.js (?:([a-z-]+) )?--help$/.exec(block.lines[0]?.text ?? '');
        if (!m) continue;
        blocks++;
        const expected = help.get(m[1] ?? '');
        const shown = block.lines
          .slice(1)
          .map((l) => l.text.trimEnd())
          .join('\n')
          .trimEnd();
        if (expected === undefined) problems.push(`${rel(doc.file)}:${block.lines[0].line}: no command ${m[1]}`);
        else if (
          shown !==
          expected
            .split('\n')
            .map((l) => l.trimEnd())
            .join('\n')
            .trimEnd()
        ) {
          problems.push(
            `${rel(doc.file)}:${block.lines[0].line}: \`bnx ${m[1] ?? ''} --help\` prints something else; run \`node scripts/docs-help.mjs\``,
          );
        }
      }
    }
    assert.ok(
      blocks >= help.size,
      `docs/cli.md shows the help of every command (${blocks} blocks, ${help.size} commands)`,
    );
    assert.deepEqual(problems, []);
  });

  it("every name a ts block imports from 'bnx' is exported", async () => {
    const lib = (await import('../src/index.js')) as Record<string, unknown>;
    const missing: string[] = [];
    for (const doc of docs) {
      for (const block of doc.blocks.filter((b) => b.info === 'ts' || b.info === 'typescript')) {
        const code = block.lines.map((l) => l.text).join('\n');
        for (const m of code.matchAll(/import\s*\{([^}]*)\}\s*from\s*['"]bnx['"]/g)) {
          for (const spec of m[1]
            .split(',')
            .map((s) => s.trim())
            .filter(Boolean)) {
            if (spec.startsWith('type ')) continue;
            const name = spec.split(/\s+as\s+/)[0];
            if (!(name in lib)) missing.push(`${rel(doc.file)}:${block.lines[0].line}: ${name}`);
          }
        }
      }
    }
    assert.deepEqual(missing, []);
  });
});

/**
 * Checks a bnx command line against the CLI's help; for run/plan/export-job, records the plan to
 * run. Returns the problem, or null.
 */
function checkBnx(args: string[], p: Prompt, where: string, plans: Map<string, Plan>): string | null {
  const first = args.find((a) => !a.startsWith('-'));
  if (first === undefined) {
    // `bnx --help`, `bnx --version`
    const options = helpOptions(help.get('') ?? '');
    const unknown = args.filter((a) => !options.has(a));
    return unknown.length > 0 ? `bnx has no option ${unknown.join(', ')}` : null;
  }
  const command = first;
  if (command === 'help') {
    const of = args.slice(args.indexOf('help') + 1).find((a) => !a.startsWith('-'));
    return of === undefined || help.has(of) ? null : `bnx has no command "${of}"`;
  }
  if (!help.has(command))
    return `bnx has no command "${command}" (bnx --help lists ${[...help.keys()].filter(Boolean).join(', ')})`;
  const options = helpOptions(help.get(command) as string);
  const positionals: string[] = [];
  const sets: string[] = [];
  const rest = args.slice(args.indexOf(command) + 1);
  for (let i = 0; i < rest.length; i++) {
    const a = rest[i];
    if (a === '--') {
      positionals.push(...rest.slice(i + 1));
      break;
    }
    if (!a.startsWith('-') || a === '-') {
      positionals.push(a);
      continue;
    }
    const eq = a.indexOf('=');
    const flag = a.startsWith('--') && eq > 0 ? a.slice(0, eq) : a;
    if (!options.has(flag)) return `bnx ${command} has no option ${flag} (see bnx ${command} --help)`;
    if (options.get(flag)) {
      const value = eq > 0 && a.startsWith('--') ? a.slice(eq + 1) : rest[++i];
      if (value === undefined) return `${flag} needs a value`;
      if (flag === '--set') sets.push(value);
    }
  }
  // `bnx run --help` prints help and plans nothing.
  if (!PLANNED.has(command) || rest.includes('--help') || rest.includes('-h')) return null;
  const spec = positionals[0];
  if (spec === undefined) return `bnx ${command} without a spec`;
  if (!fs.existsSync(path.resolve(ROOT, spec))) return `spec ${spec} does not exist`;
  const error = p.next !== null && p.next.startsWith('bnx: ') ? p.next : null;
  const key = JSON.stringify([spec, sets, error]);
  if (!plans.has(key)) plans.set(key, { spec, sets, error, where });
  return null;
}
