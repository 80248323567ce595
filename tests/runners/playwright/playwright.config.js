// Two projects, so test ids and reruns must name the project.
const { defineConfig } = require('@playwright/test');
module.exports = defineConfig({
  testDir: 'tests',
  retries: 0,
  projects: [{ name: 'api' }, { name: 'second one' }],
});
