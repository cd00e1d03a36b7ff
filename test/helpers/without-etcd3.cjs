// Preloaded (NODE_OPTIONS=--require) to run ringroute as an install without
// the optional etcd3 package: resolving it fails the way Node fails for a
// package that is not there.
const Module = require("node:module");

const resolve = Module._resolveFilename;
Module._resolveFilename = function (request, ...rest) {
  if (request === "etcd3" || request.startsWith("etcd3/")) {
    const error = new Error(`Cannot find module '${request}'`);
    error.code = "MODULE_NOT_FOUND";
    throw error;
  }
  return resolve.call(this, request, ...rest);
};
