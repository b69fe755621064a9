import type { Command } from 'commander';
import { EXPORT_TOLERANCE, exportRun, type ExportOptions, type ExportReport } from '../analyze/export.js';

/**
 * `bnx export RUN_DIR`: the run's trained model as a TensorFlow.js layers model (model.json +
 * weights.bin) with every batch norm folded into the dense weights and bias, checked against the
 * unfolded model on the test set, with both timed side by side.
 */
export function registerExportCommand(program: Command): void {
  program
    .command('export')
    .description(
      'write a trained run as a TensorFlow.js model with every batch norm folded into the dense weights; compare folded and unfolded predictions on the test set and time both',
    )
    .argument('<run-dir>', 'a completed run folder (results/<spec>/<run id>/) holding weights.json')
    .option('--out <dir>', 'where model.json, weights.bin and export.json go (default: <run-dir>/export)')
    .option('--rounds <n>', 'timing rounds (median reported)', '21')
    .option('--json', 'print the report as JSON', false)
    .action(async (runDir: string, opts: ExportOptions) => {
      const report = await exportRun(runDir, opts);
      if (opts.json) console.log(JSON.stringify(report, null, 2));
      else printReport(report);
      if (!report.ok) {
        console.error(
          `bnx: folded and unfolded predictions differ by ${report.max_abs_logit_diff.toExponential(2)} (> ${EXPORT_TOLERANCE})`,
        );
        process.exitCode = 1;
      }
    });
}

function printReport(r: ExportReport): void {
  const ms = (v: number) => `${v.toFixed(v < 10 ? 2 : 1)} ms`;
  console.log(`exported: ${r.model} (+ weights.bin), ${r.folded_batch_norms} batch norm(s) folded`);
  console.log(`  layers: ${r.layers.join(' | ')}`);
  console.log(
    `test set (${r.test_examples} examples): max |logit difference| folded vs unfolded ${r.max_abs_logit_diff.toExponential(2)} ` +
      `(tolerance ${r.tolerance}), max |probability difference| ${r.max_abs_prob_diff.toExponential(2)}, ` +
      `same class ${r.argmax_agree}/${r.test_examples}, accuracy ${r.test_acc.unfolded.toFixed(4)} unfolded / ${r.test_acc.folded.toFixed(4)} folded`,
  );
  console.log(
    `inference time, median of ${r.rounds} rounds side by side (eager ops; the layers model's predict() for reference):`,
  );
  for (const t of r.timing) {
    console.log(
      `  batch ${String(t.batch_size).padStart(5)} x ${String(t.calls).padStart(3)} call(s): unfolded ${ms(t.unfolded_ms)}, folded ${ms(t.folded_ms)}: ` +
        `speedup ${t.speedup.toFixed(2)}x  (layers model ${ms(t.layers_model_ms)})`,
    );
  }
}
