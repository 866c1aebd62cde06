// The addon built by node-gyp when npm installs this package (binding.gyp).
"use strict";
module.exports = require("./build/Release/shared_memory.node");
