/**
 * bnx's layering, checked by `npm test` (dependency-cruiser): src/ has one folder per stage of the
 * data's path, and a folder imports only from the folders before it in this order:
 *   util -> layers -> spec -> data -> model -> train -> store -> analyze | launch -> cli -> index.ts
 * (util: leaf helpers; layers: the normalization layers and the layers around them, free of configs; analyze and launch sit side by side and do not import each other). No file
 * takes part in an import cycle. See ARCHITECTURE.md.
 */
const ORDER = ['util', 'layers', 'spec', 'data', 'model', 'train', 'store', 'analyze|launch', 'cli'];
const above = (i) => ORDER.slice(i + 1).join('|');
const layerRules = ORDER.slice(0, -1).map((layer, i) => ({
  name: `no-upward-import-from-${layer.replace('|', '-')}`,
  comment: `src/${layer} may import only from ${ORDER.slice(0, i).join(', ') || 'nothing else in src'}`,
  severity: 'error',
  from: { path: `^src/(${layer})/` },
  to: { path: `^src/(${above(i)})/|^src/index\\.ts$` },
}));

module.exports = {
  forbidden: [
    {
      name: 'no-circular',
      comment: 'an import cycle ties files together so that none can be read, tested or moved alone',
      severity: 'error',
      from: {},
      to: { circular: true },
    },
    {
      name: 'analyze-and-launch-apart',
      comment: 'analyze (reading results) and launch (starting processes and jobs) do not depend on each other',
      severity: 'error',
      from: { path: '^src/(analyze|launch)/' },
      to: { path: '^src/(analyze|launch)/', pathNot: '^src/$1/' },
    },
    {
      name: 'no-root-files-but-the-entry',
      comment: 'src/ holds stage folders and the package entry (index.ts) only',
      severity: 'error',
      from: {},
      to: { path: '^src/[^/]+\\.ts$', pathNot: '^src/index\\.ts$' },
    },
    ...layerRules,
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    exclude: { path: '^(dist|node_modules)/' },
  },
};
