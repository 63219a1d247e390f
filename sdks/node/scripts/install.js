'use strict';
// `npm install` of the syros package. Nothing to do when a native addon loads: the prebuilt
// per-platform package (`syros-<platform>`, an optionalDependency) or a `syros.<platform>.node`
// built before. Otherwise, in a source checkout (this package under sdks/node of the Syros
// repository), build the addon with cargo: release by default, SYROS_NODE_PROFILE=debug for a
// debug build; CARGO_TARGET_DIR is honoured, so the crates built for other languages are reused.
const fs = require('node:fs');
const path = require('node:path');
const { spawnSync } = require('node:child_process');

const packageDir = path.join(__dirname, '..');

function loads() {
  try {
    require(path.join(packageDir, 'lib', 'native.js'));
    return true;
  } catch {
    return false;
  }
}

function main() {
  if (process.env.SYROS_NODE_SKIP_BUILD === '1' || loads()) return 0;
  const { platformSuffix } = require('./platform');
  const suffix = platformSuffix();
  const root = path.resolve(packageDir, '..', '..');
  const manifest = path.join(root, 'bindings', 'node', 'Cargo.toml');
  if (!fs.existsSync(manifest)) {
    console.error(
      `syros: no prebuilt native addon for ${suffix} (package syros-${suffix}) and no Syros ` +
        'source checkout to build one from. Install on a supported platform, or run ' +
        '`npm install ./sdks/node` from a clone of the Syros repository (needs Rust/cargo).',
    );
    return 1;
  }
  const profile = process.env.SYROS_NODE_PROFILE === 'debug' ? 'debug' : 'release';
  console.log(`syros: no prebuilt addon for ${suffix}: building bindings/node with cargo (${profile})`);
  const args = ['build', '-p', 'syros-node'];
  if (profile === 'release') args.push('--release');
  const built = spawnSync('cargo', args, { cwd: root, stdio: 'inherit' });
  if (built.error || built.status !== 0) {
    console.error(`syros: cargo build failed${built.error ? `: ${built.error.message}` : ''} (is Rust installed?)`);
    return 1;
  }
  const targetDir = process.env.CARGO_TARGET_DIR || path.join(root, 'target');
  const library = { linux: 'libsyros_node.so', darwin: 'libsyros_node.dylib', win32: 'syros_node.dll' }[process.platform];
  const from = path.join(targetDir, profile, library || 'libsyros_node.so');
  const to = path.join(packageDir, `syros.${suffix}.node`);
  fs.copyFileSync(from, to);
  if (!loads()) {
    console.error(`syros: built ${to} but it does not load`);
    return 1;
  }
  console.log(`syros: built ${to}`);
  return 0;
}

process.exitCode = main();
