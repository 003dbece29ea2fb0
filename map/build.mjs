// Builds the map into the web app's folder (argument: the site folder, e.g. target/site):
//   map/leaflet.js, map/leaflet.css   Leaflet, as published on npm
//   map/protomaps-leaflet.js          protomaps-leaflet, as published on npm: draws a regional
//                                     map of vector tiles (loaded only for one)
//   map/map.js                        FieldMesh's map (map/fieldmesh-map.js)
//   map/world.json                    the built-in world basemap: land and country borders
//                                     (Natural Earth 1:50m, via world-atlas), lakes and
//                                     rivers (OpenStreetMap, via geo-maps), one GeoJSON
// Files are rewritten only when their bytes change, so the server (which embeds the folder)
// is not rebuilt for nothing.
import { mkdirSync, readFileSync, writeFileSync, existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { feature, mesh } from 'topojson-client';

const here = dirname(fileURLToPath(import.meta.url));
const site = process.argv[2];
if (!site) throw new Error('usage: node map/build.mjs SITE_FOLDER');
const out = join(site, 'map');
mkdirSync(out, { recursive: true });

function write(name, bytes) {
  const path = join(out, name);
  const data = typeof bytes === 'string' ? Buffer.from(bytes) : bytes;
  if (existsSync(path) && readFileSync(path).equals(data)) return;
  writeFileSync(path, data);
}

const modules = join(here, 'node_modules');
write('leaflet.js', readFileSync(join(modules, 'leaflet/dist/leaflet.js')));
write('leaflet.css', readFileSync(join(modules, 'leaflet/dist/leaflet.css')));
write('protomaps-leaflet.js', readFileSync(join(modules, 'protomaps-leaflet/dist/protomaps-leaflet.js')));
write('map.js', readFileSync(join(here, 'fieldmesh-map.js')));

// Coordinates to 0.01° (about a kilometre): plenty for a world map, a third of the bytes.
const round = (value) => Math.round(value * 100) / 100;
function rounded(geometry) {
  const walk = (c) => (typeof c[0] === 'number' ? [round(c[0]), round(c[1])] : c.map(walk));
  return { type: geometry.type, coordinates: walk(geometry.coordinates) };
}
function features(collection, kind) {
  const list = collection.type === 'FeatureCollection' ? collection.features : [collection];
  return list
    .map((f) => (f.type === 'Feature' ? f.geometry : f))
    .flatMap((g) => (g && g.type === 'GeometryCollection' ? g.geometries : [g]))
    .filter((g) => g && g.coordinates)
    .map((geometry) => ({ type: 'Feature', properties: { kind }, geometry: rounded(geometry) }));
}
const countries = JSON.parse(readFileSync(join(modules, 'world-atlas/countries-50m.json')));
const land = feature(countries, countries.objects.land);
const borders = mesh(countries, countries.objects.countries, (a, b) => a !== b);
const lakes = JSON.parse(readFileSync(join(modules, '@geo-maps/earth-lakes-10km/map.geo.json')));
const rivers = JSON.parse(readFileSync(join(modules, '@geo-maps/earth-rivers-10km/map.geo.json')));
const world = {
  type: 'FeatureCollection',
  features: [
    ...features(land, 'land'),
    ...features(lakes, 'lake'),
    ...features(rivers, 'river'),
    ...features(borders, 'border'),
  ],
};
write('world.json', JSON.stringify(world));
