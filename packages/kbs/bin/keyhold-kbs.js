#!/usr/bin/env node
import '../dist/bin/keyhold-kbs.js';
