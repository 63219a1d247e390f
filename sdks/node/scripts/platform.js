'use strict';
// The napi-rs platform name of this process (`linux-x64-gnu`, ...): the suffix of the addon file
// and of the per-platform package.
function platformSuffix() {
  const { platform, arch } = process;
  if (platform === 'linux') {
    const report = typeof process.report?.getReport === 'function' ? process.report.getReport() : null;
    const glibc = report && report.header && report.header.glibcVersionRuntime;
    return `linux-${arch}-${glibc ? 'gnu' : 'musl'}`;
  }
  if (platform === 'win32') return `win32-${arch}-msvc`;
  return `${platform}-${arch}`;
}
module.exports = { platformSuffix };
