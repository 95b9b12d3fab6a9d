#!/usr/bin/env bash
# Re-vendor the GraphiQL page's browser assets into graph/static/graphiql/ from the npm registry.
#
# The versions are the ones Strawberry's own GraphiQL template loads from a CDN
# (strawberry/static/graphiql.html); graph/http/graphiql.py pins the same files with the same sha384
# integrity values. To move to other versions: change the versions below, run this script, then
# update ASSETS (paths and integrity values, printed at the end) in graph/http/graphiql.py and the
# README.md next to the assets.
#
# Usage: scripts/vendor_graphiql.sh            (needs npm, tar, openssl, base64)
set -euo pipefail

REACT=18.2.0
REACT_DOM=18.2.0
JS_COOKIE=3.0.5
GRAPHIQL=3.8.3
PLUGIN_EXPLORER=1.0.2
GRAPHIQL_EXPLORER=0.9.0 # bundled inside the explorer plugin's UMD file; vendored for its licence

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dest="$root/graph/static/graphiql"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

cd "$work"
npm pack --silent \
  "react@$REACT" "react-dom@$REACT_DOM" "js-cookie@$JS_COOKIE" "graphiql@$GRAPHIQL" \
  "@graphiql/plugin-explorer@$PLUGIN_EXPLORER" "graphiql-explorer@$GRAPHIQL_EXPLORER" >/dev/null
for tgz in *.tgz; do
  mkdir -p "x/${tgz%.tgz}"
  tar -xzf "$tgz" -C "x/${tgz%.tgz}"
done

rm -rf "$dest/react" "$dest/react-dom" "$dest/js-cookie" "$dest/graphiql" \
  "$dest/plugin-explorer" "$dest/LICENSES"
mkdir -p "$dest/react" "$dest/react-dom" "$dest/js-cookie" "$dest/graphiql" \
  "$dest/plugin-explorer" "$dest/LICENSES"

p="x/react-$REACT/package"
cp "$p/umd/react.production.min.js" "$dest/react/"
cp "$p/LICENSE" "$dest/LICENSES/react.LICENSE"

p="x/react-dom-$REACT_DOM/package"
cp "$p/umd/react-dom.production.min.js" "$dest/react-dom/"
cp "$p/LICENSE" "$dest/LICENSES/react-dom.LICENSE"

p="x/js-cookie-$JS_COOKIE/package"
cp "$p/dist/js.cookie.min.js" "$dest/js-cookie/"
cp "$p/LICENSE" "$dest/LICENSES/js-cookie.LICENSE"

p="x/graphiql-$GRAPHIQL/package"
cp "$p/graphiql.min.js" "$p/graphiql.min.css" "$dest/graphiql/"
cp "$p/LICENSE" "$dest/LICENSES/graphiql.LICENSE"

p="x/graphiql-plugin-explorer-$PLUGIN_EXPLORER/package"
cp "$p/dist/index.umd.js" "$p/dist/style.css" "$dest/plugin-explorer/"
# The plugin's tarball has no LICENSE file; its package.json says MIT and it lives in the same
# repository (graphql/graphiql) as graphiql, whose LICENSE therefore covers it.
{
  echo "@graphiql/plugin-explorer@$PLUGIN_EXPLORER: its npm tarball ships no LICENSE file;"
  echo "package.json declares \"license\": \"MIT\" and the package is developed in the same"
  echo "repository (graphql/graphiql, packages/graphiql-plugin-explorer) as graphiql, whose"
  echo "LICENSE follows."
  echo
  cat "x/graphiql-$GRAPHIQL/package/LICENSE"
} >"$dest/LICENSES/plugin-explorer.LICENSE"

p="x/graphiql-explorer-$GRAPHIQL_EXPLORER/package"
cp "$p/LICENSE" "$dest/LICENSES/graphiql-explorer.LICENSE"

echo "sha384 integrity of the vendored files:"
cd "$dest"
for f in react/react.production.min.js react-dom/react-dom.production.min.js \
  js-cookie/js.cookie.min.js graphiql/graphiql.min.css plugin-explorer/style.css \
  graphiql/graphiql.min.js plugin-explorer/index.umd.js; do
  echo "  $f sha384-$(openssl dgst -sha384 -binary "$f" | base64 -w0)"
done
