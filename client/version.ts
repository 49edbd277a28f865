// The version `dip --version` prints. A constant rather than a read of package.json, so the
// committed bin/ bundles do not change when unrelated package.json fields do; a test keeps it
// equal to package.json's version.

export const DIP_VERSION = '0.1.0';
