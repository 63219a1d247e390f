'use strict';
// Stages the package for publishing the napi-rs way (what `napi prepublish` does): copies the
// published files into DEST and adds one optionalDependency per built platform package
// (npm/<platform>/package.json), so `npm install syros` fetches only the matching prebuilt addon.
// The source package.json carries none: they do not exist in a registry until published.
//
//   node scripts/stage.js DEST     then: npm pack DEST, npm pack npm/<platform>
const fs = require('node:fs');
const path = require('node:path');

const dest = process.argv[2];
if (!dest) {
  console.error('usage: node scripts/stage.js DEST');
  process.exit(2);
}
const root = path.join(__dirname, '..');
const pkg = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8'));
fs.mkdirSync(dest, { recursive: true });
for (const entry of pkg.files) {
  fs.cpSync(path.join(root, entry), path.join(dest, entry), { recursive: true });
}
pkg.optionalDependencies = {};
for (const platform of fs.readdirSync(path.join(root, 'npm'))) {
  const platformPkg = JSON.parse(fs.readFileSync(path.join(root, 'npm', platform, 'package.json'), 'utf8'));
  pkg.optionalDependencies[platformPkg.name] = platformPkg.version;
}
delete pkg.devDependencies;
fs.writeFileSync(path.join(dest, 'package.json'), `${JSON.stringify(pkg, null, 2)}\n`);
console.log(`staged ${pkg.name}@${pkg.version} in ${dest} with ${Object.keys(pkg.optionalDependencies).join(', ')}`);
