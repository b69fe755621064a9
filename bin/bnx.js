#!/usr/bin/env node
// TensorFlow reads its log level from the environment when its library loads: set it before
// anything imports it. Its start-up notices (CPU features, oneDNN) are silenced by default; errors
// still reach the user. `--verbose` (anywhere on the command line) or BNX_TF_LOG=1 shows them; the
// environment carries the choice to worker processes.
const verbose = process.argv.includes('--verbose') || process.env.BNX_TF_LOG === '1';
if (verbose) {
  process.env.BNX_TF_LOG = '1';
  process.env.TF_CPP_MIN_LOG_LEVEL = '0';
  process.argv = process.argv.filter((a) => a !== '--verbose');
} else {
  process.env.TF_CPP_MIN_LOG_LEVEL ??= '2';
}
let cli;
try {
  cli = await import('../dist/src/cli/main.js');
} catch (e) {
  // A clone that was never built (or a build in progress): one line, not Node's stack trace.
  if (e?.code !== 'ERR_MODULE_NOT_FOUND' || !String(e.message).includes('/dist/')) throw e;
  process.stderr.write('bnx: dist/ is missing or incomplete: build bnx first (npm start, or npm run build)\n');
  process.exit(2);
}
await cli.main(process.argv);
