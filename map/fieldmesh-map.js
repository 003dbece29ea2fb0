// FieldMesh's map, loaded only when the map opens (after leaflet.js). The app (Wasm) calls
//   const map = window.fieldmeshMap.open(element, onSelect);
//   map.update({ markers: [{ id, kind, lat, lon, label, accuracy }], focus });
//   map.close();
// kind is 'me', 'person', 'message' or 'sos'; onSelect(id) is called when a marker is tapped.
// The basemap is the server's own: the built-in world map (/map/world.json) and, when the
// operator gave one, the regional map's tiles (/map/tiles/Z/X/Y). Nothing comes from
// elsewhere.
(function () {
  'use strict';
  const L = window.L;

  const WORLD_STYLE = {
    land: { stroke: false, fill: true, fillColor: '#2a3a2e', fillOpacity: 1 },
    lake: { stroke: false, fill: true, fillColor: '#123049', fillOpacity: 1 },
    river: { color: '#1f4f73', weight: 1, opacity: 0.9, fill: false },
    border: { color: '#8b98a5', weight: 1, opacity: 0.6, dashArray: '3 3', fill: false },
  };

  /** The world basemap: land, lakes, rivers and borders, drawn on a canvas. */
  async function world(map) {
    const answer = await fetch('/map/world.json');
    if (!answer.ok) return;
    const data = await answer.json();
    // Under the regional map's tiles, which show the region in detail over it.
    if (!map.getPane('world')) {
      map.createPane('world');
      map.getPane('world').style.zIndex = 150;
    }
    L.geoJSON(data, {
      pane: 'world',
      renderer: L.canvas({ padding: 0.5, pane: 'world' }),
      interactive: false,
      style: (feature) => WORLD_STYLE[feature.properties.kind] ?? WORLD_STYLE.border,
    }).addTo(map);
    map.attributionControl.addAttribution('Natural Earth · lakes and rivers © OpenStreetMap contributors');
  }

  /** Loads a script of the map's folder once. */
  const scripts = new Map();
  function script(src) {
    if (!scripts.has(src)) {
      scripts.set(src, new Promise((resolve, reject) => {
        const element = document.createElement('script');
        element.src = src;
        element.onload = resolve;
        element.onerror = () => reject(new Error(`could not load ${src}`));
        document.head.appendChild(element);
      }));
    }
    return scripts.get(src);
  }

  /** The operator's regional map, when the server has one: raster tiles as images, vector
   * tiles (a Protomaps extract) drawn on the phone by protomaps-leaflet, loaded only then. */
  async function regional(map) {
    const answer = await fetch('/map/tiles.json');
    if (!answer.ok) return null;
    const info = await answer.json();
    const [west, south, east, north] = info.bounds;
    // The map's version in every address: a map the operator replaced is never drawn from
    // tiles kept of the one before (by the browser or the service worker).
    const url = `/map/tiles/{z}/{x}/{y}?v=${encodeURIComponent(info.version ?? '')}`;
    const bounds = L.latLngBounds([south, west], [north, east]);
    const attribution = 'regional map: see the operator';
    if (info.kind === 'raster') {
      L.tileLayer(url, {
        minZoom: 0,
        maxNativeZoom: info.maxzoom,
        maxZoom: Math.max(info.maxzoom, 18),
        bounds,
        attribution,
      }).addTo(map);
    } else if (info.kind === 'vector') {
      await script('/map/protomaps-leaflet.js');
      const layer = window.protomapsL.leafletLayer({
        url,
        flavor: 'dark',
        lang: navigator.language?.split('-')[0] || 'en',
        maxDataZoom: info.maxzoom,
        bounds,
        attribution,
      });
      layer.addTo(map);
    }
    return info;
  }

  /** A marker's element: its label as text (names come from other people). */
  function markerElement(marker) {
    const element = document.createElement('span');
    element.className = 'map-marker ' + marker.kind;
    element.dataset.testid = 'map-marker';
    element.dataset.kind = marker.kind;
    element.dataset.id = marker.id;
    const dot = document.createElement('span');
    dot.className = 'map-dot';
    const label = document.createElement('span');
    label.className = 'map-label';
    label.textContent = marker.label;
    element.append(dot, label);
    return element;
  }

  function open(element, onSelect) {
    const map = L.map(element, {
      zoomControl: true,
      worldCopyJump: true,
      minZoom: 1,
      maxZoom: 18,
      attributionControl: true,
    });
    map.attributionControl.setPrefix(false);
    map.setView([20, 0], 2);
    const ready = Promise.all([world(map), regional(map).catch(() => null)]);
    const markers = L.layerGroup().addTo(map);
    // The view follows the markers until the person moves the map themselves.
    let moved = false;
    let placing = false;
    map.on('dragstart zoomstart', () => {
      if (!placing) moved = true;
    });
    const place = (how) => {
      placing = true;
      how();
      placing = false;
    };
    element.dataset.ready = 'loading';
    ready.then(() => (element.dataset.ready = 'true'), () => (element.dataset.ready = 'failed'));

    return {
      update({ markers: list, focus }) {
        markers.clearLayers();
        const points = [];
        for (const marker of list) {
          const at = [marker.lat, marker.lon];
          points.push(at);
          if (marker.kind === 'me' && marker.accuracy > 0) {
            L.circle(at, { radius: marker.accuracy, color: '#3fb68b', weight: 1, fillOpacity: 0.1, interactive: false }).addTo(markers);
          }
          const icon = L.divIcon({ className: 'map-icon', html: markerElement(marker), iconSize: null });
          const placed = L.marker(at, { icon, keyboard: true, title: marker.label, riseOnHover: true });
          if (marker.kind !== 'me') placed.on('click', () => onSelect(marker.id));
          placed.addTo(markers);
        }
        if (moved) return;
        const focused = focus ? list.find((m) => m.id === focus) : undefined;
        if (focused) {
          place(() => map.setView([focused.lat, focused.lon], 15, { animate: false }));
        } else if (points.length > 0) {
          place(() => map.fitBounds(L.latLngBounds(points), { paddingTopLeft: [40, 40], paddingBottomRight: [150, 40], maxZoom: 14, animate: false }));
        }
      },
      close() {
        map.remove();
      },
    };
  }

  window.fieldmeshMap = { open };
})();
