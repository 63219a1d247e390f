'use strict';
// Loads the native addon the way napi-rs packages do: the per-platform package
// (`syros-linux-x64-gnu`, an optionalDependency, so users on built platforms never compile
// Rust), else a `syros.<platform>.node` beside this package (built from source by
// scripts/install.js or `npm run build`). SYROS_NATIVE_PATH names a file to load instead.
const fs = require('node:fs');
const path = require('node:path');
const { platformSuffix } = require('../scripts/platform');

function load() {
  if (process.env.SYROS_NATIVE_PATH) return require(process.env.SYROS_NATIVE_PATH);
  const suffix = platformSuffix();
  const local = path.join(__dirname, '..', `syros.${suffix}.node`);
  const errors = [];
  if (fs.existsSync(local)) {
    try {
      return require(local);
    } catch (err) {
      errors.push(`${local}: ${err.message}`);
    }
  }
  try {
    return require(`syros-${suffix}`);
  } catch (err) {
    errors.push(`syros-${suffix}: ${err.message}`);
  }
  throw new Error(
    `syros: no native addon for ${suffix}. Install the package again on a platform with a ` +
      `prebuilt binary, or from a source checkout (it builds with cargo). Tried:\n  ${errors.join('\n  ')}`,
  );
}

module.exports = load();
module.exports.platformSuffix = platformSuffix;
