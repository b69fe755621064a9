#!/usr/bin/env node
// TensorFlow prints CPU-feature notices when its library loads; set before anything imports it.
process.env.TF_CPP_MIN_LOG_LEVEL ??= '2';
const { main } = await import('../dist/src/cli/main.js');
await main(process.argv);
