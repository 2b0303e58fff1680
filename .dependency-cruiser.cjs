/**
 * The layer order of ARCHITECTURE.md, checked by `npm run lint:deps` (part of `npm test`).
 * Imports only point to a lower layer: never up, never sideways between two folders of one layer,
 * and never in a cycle (type-only imports included).
 */

/** Lowest first. A layer is a list of folders under src/; 'leaf' is the modules directly in src/. */
const LAYERS = [
  ['leaf', 'protocol', 'crypto', 'config'],
  ['transport', 'tunnel'],
  ['registry'],
  ['beacon', 'services'],
  ['daemon', 'sdk'],
  ['cli'],
  ['bin', 'index'],
];

/** Path pattern of one folder (or of the leaf modules, or of src/index.ts). */
function pathOf(folder) {
  if (folder === 'leaf') return '^src/(?!index\\.ts$)[^/]+\\.ts$';
  if (folder === 'index') return '^src/index\\.ts$';
  return `^src/${folder}/`;
}

function anyOf(folders) {
  return folders.map((f) => `(?:${pathOf(f)})`).join('|');
}

const layerRules = LAYERS.flatMap((layer, i) => {
  const higher = LAYERS.slice(i + 1).flat();
  const rules = [];
  if (higher.length > 0) {
    rules.push({
      name: `layer-${i + 1}-not-up`,
      comment: `layer ${i + 1} (${layer.join(', ')}) imports only from lower layers, never from ${higher.join(', ')}`,
      severity: 'error',
      from: { path: anyOf(layer) },
      to: { path: anyOf(higher) },
    });
  }
  // The leaf modules may use the folders of their own layer (an interface naming an Addr); those
  // folders may use the leaf modules (errors, log); the folders themselves stay apart.
  for (const folder of layer.filter((f) => f !== 'leaf')) {
    const siblings = layer.filter((f) => f !== folder && f !== 'leaf');
    if (siblings.length === 0) continue;
    rules.push({
      name: `layer-${i + 1}-${folder}-not-sideways`,
      comment: `${folder}/ does not import from ${siblings.join(', ')} (same layer)`,
      severity: 'error',
      from: { path: pathOf(folder) },
      to: { path: anyOf(siblings) },
    });
  }
  return rules;
});

/** @type {import('dependency-cruiser').IConfiguration} */
module.exports = {
  forbidden: [
    {
      name: 'no-circular',
      comment: 'no module depends on itself through others',
      severity: 'error',
      from: {},
      to: { circular: true },
    },
    {
      name: 'not-to-unresolvable',
      comment: 'every relative import resolves to a file',
      severity: 'error',
      from: {},
      to: { couldNotResolve: true },
    },
    ...layerRules,
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    enhancedResolveOptions: {
      exportsFields: ['exports'],
      conditionNames: ['import', 'require', 'node', 'default', 'types'],
      extensions: ['.ts', '.js', '.d.ts'],
    },
  },
};
