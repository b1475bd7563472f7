/*
 * Import rules checked by `npm run deps` (part of `npm run check` and CI): no import
 * cycles anywhere, and imports flow one way, src <- queues <- workers.
 */
module.exports = {
  forbidden: [
    { name: 'no-cycles', severity: 'error', comment: 'An import cycle: move the shared piece to the module both depend on.', from: {}, to: { circular: true } },
    { name: 'src-is-the-domain', severity: 'error', comment: 'src/ must not import queues/ or workers/.', from: { path: '^src/' }, to: { path: '^(queues|workers)/' } },
    { name: 'queues-below-workers', severity: 'error', comment: 'queues/ must not import workers/.', from: { path: '^queues/' }, to: { path: '^workers/' } },
    { name: 'no-test-imports', severity: 'error', comment: 'Production code must not import test code.', from: { path: '^(src|queues|workers)/' }, to: { path: '^test/' } },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    enhancedResolveOptions: { extensions: ['.ts', '.js', '.mjs'] },
  },
};
