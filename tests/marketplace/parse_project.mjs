// Reads a HubSpot developer project with HubSpot's own parser (@hubspot/project-parsing-lib)
// and prints what it found as JSON, for tests/marketplace/test_hubspot_project.py.
// Usage: node parse_project.mjs LIB_DIR PROJECT_DIR
import path from 'node:path';
import { pathToFileURL } from 'node:url';

const [libDir, projectDir] = process.argv.slice(2);
const load = name => import(pathToFileURL(
  path.join(libDir, 'node_modules', '@hubspot', 'project-parsing-lib', 'src', 'exports', `${name}.js`)).href);

const { parseProjectConfig, getProjectMetadata } = await load('projects');
const { LATEST_SUPPORTED_PLATFORM_VERSION, isKnownPlatformVersion } = await load('projects');
const { translate } = await load('translate');
const { validateUid } = await load('uid');

const result = { errors: [] };
try {
  const config = parseProjectConfig(projectDir);
  const srcDir = path.resolve(projectDir, config.srcDir);
  result.platformVersion = config.platformVersion;
  result.latestSupported = LATEST_SUPPORTED_PLATFORM_VERSION;
  result.knownVersion = isKnownPlatformVersion(config.platformVersion);
  // The schema check needs a HubSpot account (the schemas are fetched from HubSpot): everything
  // else the parser does - finding and reading the *-hsmeta.json files, placing each component,
  // linking features to the app - runs here.
  const { intermediateRepresentation, skippedHsMetaFiles } = await translate(
    { projectSourceDir: srcDir, platformVersion: config.platformVersion, accountId: 1 },
    { skipValidation: true });
  result.skipped = skippedHsMetaFiles;
  result.nodes = intermediateRepresentation.intermediateNodesIndexedByUid;
  result.uidErrors = Object.keys(result.nodes).map(validateUid).filter(Boolean);
  const metadata = await getProjectMetadata(srcDir);
  result.overfull = Object.entries(metadata.components)
    .filter(([, c]) => c.count > c.maxCount).map(([type]) => type);
} catch (error) {
  result.errors.push(String(error && error.message || error));
}
process.stdout.write(JSON.stringify(result));
