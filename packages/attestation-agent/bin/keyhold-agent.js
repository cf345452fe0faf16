#!/usr/bin/env node
import '../dist/bin/keyhold-agent.js';
