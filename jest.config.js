/** @type {import('jest').Config} */
module.exports = {
  testEnvironment: '<rootDir>/test/helpers/environment.js',
  roots: ['<rootDir>/test'],
  testMatch: ['**/*.test.ts'],
  transform: {
    '^.+\\.ts$': ['ts-jest', { isolatedModules: true, tsconfig: 'tsconfig.json' }],
    // hyparquet (Parquet reader, src/data/parquet.ts) ships ES modules only; Jest runs CommonJS and
    // cannot import() without --experimental-vm-modules, so its files are transpiled to CommonJS.
    '/node_modules/hyparquet/.+\\.js$': ['ts-jest', { tsconfig: { allowJs: true, isolatedModules: true, module: 'commonjs', target: 'ES2022', esModuleInterop: true } }],
  },
  transformIgnorePatterns: ['/node_modules/(?!hyparquet/)'],
  testTimeout: 120000,
  // Native memory and a thread pool per worker: two workers match the 2-core CI machine.
  maxWorkers: 2,
};
