#!/usr/bin/env bash
# matedge build script.
#
#   ./build.sh          build bin/matedge and dist/ (matedge.wasm, .br, .gz, the web runtime, the demo,
#                       and the npm package dist/npm/matedge-VERSION.tgz)
#   ./build.sh run      build, then generate text with the default model
#   ./build.sh test     install what the tests need (as root), check formatting and vet,
#                       run the Go tests and the browser tests
#
# Under CI=true a test that would skip for a missing dependency fails instead.
set -euo pipefail
cd "$(dirname "$0")"

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

# WASM_MODULES lists the WebAssembly files the web runtime loads, in dist/:
# each is compressed beside itself (.br, .gz) and packed into the npm package.
# A module added here (a kernel companion, say) needs nothing else in this file.
WASM_MODULES=(matedge.wasm kernels.wasm)

build() {
	say "building dist/matedge.wasm (GOOS=wasip1, reactor, stripped)"
	mkdir -p bin dist
	# -s -w drop the symbol table and DWARF: 5.05 MB → 4.95 MB before compression
	# (RATIONALE.md: why no wasm-opt).
	GOOS=wasip1 GOARCH=wasm go build -trimpath -ldflags="-s -w" -buildmode=c-shared -o dist/matedge.wasm ./wasm
	# The native CLI trains with vector kernels from Go's simd/archsimd, which
	# needs GOEXPERIMENT=simd (amd64; elsewhere the plain-Go kernels are used).
	say "building bin/matedge (GOEXPERIMENT=simd)"
	GOEXPERIMENT=simd go build -trimpath -o bin/matedge ./host/cmd/matedge
	say "copying the web runtime, the demo and kernels.wasm into dist/"
	cp -r web/src/. dist/
	cp -r web/demo/. dist/
	# The SIMD128 companion module is committed (assembled from its WAT by
	# wabt's wat2wasm; go test ./wasm/kernels checks that it is up to date).
	cp wasm/kernels/kernels.wasm dist/
	compress
	pack
}

# compress writes NAME.br (brotli -q 11) and NAME.gz (gzip -9) beside each
# module, which matedge serve and nginx (gzip_static) send to browsers that
# accept them.
compress() {
	local m
	for m in "${WASM_MODULES[@]}"; do
		if command -v brotli >/dev/null; then
			[ "dist/$m.br" -nt "dist/$m" ] || brotli -q 11 -f -o "dist/$m.br" "dist/$m"
		else
			rm -f "dist/$m.br"
			say "no brotli: dist/$m.br not made (apt-get install brotli)"
		fi
		[ "dist/$m.gz" -nt "dist/$m" ] || gzip -9 -n -c "dist/$m" >"dist/$m.gz"
	done
	say "dist/: $(for m in "${WASM_MODULES[@]}"; do for f in "dist/$m" "dist/$m.br" "dist/$m.gz"; do [ -e "$f" ] && printf '%s %s bytes  ' "${f#dist/}" "$(wc -c <"$f")"; done; done)"
}

# pack makes the npm package from web/npm/package.json, the runtime in
# web/src/ and the WASM_MODULES: dist/npm/matedge-VERSION.tgz (npm pack).
pack() {
	if ! command -v npm >/dev/null; then
		say "no npm: the npm package is not made"
		return
	fi
	local dir=dist/npm/matedge m
	rm -rf dist/npm
	mkdir -p "$dir"
	cp web/npm/package.json web/npm/README.md "$dir/"
	cp web/src/*.js web/src/*.d.ts "$dir/"
	for m in "${WASM_MODULES[@]}"; do cp "dist/$m" "$dir/"; done
	local tgz
	tgz=$(cd dist/npm && npm pack ./matedge --pack-destination . --silent --ignore-scripts)
	say "npm package: dist/npm/$tgz"
}

# install_deps installs, when run as root, what the tests need and is missing:
# Debian's chromium (the browser tests), nginx (the demo served by a real static
# server) and its brotli_static module, brotli (the precompressed module),
# Mesa's Vulkan drivers (GPU tests on lavapipe), Debian's python3-numpy
# (independent safetensors checks), wabt (wat2wasm: the test that the committed
# wasm/kernels/kernels.wasm is what kernels.wat assembles to), and the npm
# packages of web/ (playwright-core, no browser download) and of
# weights/convert/testdata/hfcheck (@huggingface/gguf and @huggingface/tokenizers),
# and dataset-fashion-mnist (the vision model's images).
install_deps() {
	local missing=()
	command -v chromium >/dev/null || missing+=(chromium)
	command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || missing+=(nginx)
	command -v brotli >/dev/null || missing+=(brotli)
	[ -e /usr/lib/nginx/modules/ngx_http_brotli_static_module.so ] || missing+=(libnginx-mod-http-brotli-static)
	[ -e /usr/lib/x86_64-linux-gnu/libvulkan.so.1 ] || ldconfig -p | grep -q libvulkan.so.1 || missing+=(libvulkan1)
	compgen -G '/usr/share/vulkan/icd.d/lvp_icd*.json' >/dev/null || missing+=(mesa-vulkan-drivers)
	# numpy under Debian's own python: the independent safetensors reader and
	# Llama forward pass of weights/safetensors and weights/convert's tests.
	/usr/bin/python3 -c 'import numpy' 2>/dev/null || missing+=(python3-numpy)
	command -v wat2wasm >/dev/null || missing+=(wabt)
	# Fashion-MNIST: the vision model's data (weights/train's loader test and
	# the vision tests' sample images).
	[ -e /usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz ] || missing+=(dataset-fashion-mnist)
	if [ ${#missing[@]} -gt 0 ]; then
		if [ "$(id -u)" = 0 ]; then
			say "installing ${missing[*]} (apt)"
			apt-get update -qq
			DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
		else
			say "missing ${missing[*]}; run as root to install them (tests needing them will skip, or fail under CI=true)"
		fi
	fi
	if [ ! -d web/node_modules/playwright-core ] || [ web/package-lock.json -nt web/node_modules/.package-lock.json ]; then
		say "npm ci (web/)"
		(cd web && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error)
	fi
	# @huggingface/gguf and @huggingface/tokenizers: the independent readers
	# weights/convert's tests run on its GGUF and tokenizer.json exports.
	local hf=weights/convert/testdata/hfcheck
	if [ ! -d $hf/node_modules/@huggingface/tokenizers ] || [ $hf/package-lock.json -nt $hf/node_modules/.package-lock.json ]; then
		say "npm ci ($hf/)"
		(cd $hf && npm ci --no-audit --no-fund --loglevel=error)
	fi
}

check() {
	say "gofmt"
	local unformatted
	unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go' -not -path './web/node_modules/*'))
	if [ -n "$unformatted" ]; then
		echo "gofmt needed on:" >&2
		echo "$unformatted" >&2
		exit 1
	fi
	say "go vet (native)"
	go vet ./...
	say "go vet (GOOS=wasip1)"
	GOOS=wasip1 GOARCH=wasm go vet ./...
	say "go vet (GOEXPERIMENT=simd)"
	GOEXPERIMENT=simd go vet ./...
}

run_tests() {
	install_deps
	check
	build
	export MATEDGE_WASM="$PWD/dist/matedge.wasm" MATEDGE_BIN="$PWD/bin/matedge"
	say "go test ./..."
	local log
	log=$(mktemp)
	go test -count=1 -v ./... 2>&1 | tee "$log" | grep -E '^(ok|FAIL|---|panic|\s+\S+_test.go)' || true
	if grep -qE '^(FAIL|--- FAIL|panic:)' "$log"; then
		say "Go tests failed"
		grep -B2 -A20 -E '^(--- FAIL|panic:)' "$log" >&2 || true
		exit 1
	fi
	if ! grep -qE '^ok ' "$log"; then
		say "go test ran nothing"
		cat "$log" >&2
		exit 1
	fi
	# A test skips with a reason starting "needs " when a dependency is missing
	# (a browser, a GPU adapter). Under CI that is a failure, not a pass.
	local skips
	skips=$(grep -E -A1 -- '--- SKIP' "$log" | grep -E '^\s+\S+\.go:[0-9]+: needs ' || true)
	if [ -n "$skips" ]; then
		say "tests skipped for a missing dependency:"
		echo "$skips" >&2
		if [ "${CI:-}" = true ]; then
			say "CI=true: a test skipped for a missing dependency is a failure"
			exit 1
		fi
	fi
	# The model's tests again with the vector kernels built in: each kernel
	# set against the plain-Go reference, and the network on the fast set.
	say "go test ./model/... (GOEXPERIMENT=simd)"
	GOEXPERIMENT=simd go test -count=1 ./model/...
	if [ "$(go env GOARCH)" = amd64 ] && grep -qw avx2 /proc/cpuinfo && grep -qw fma /proc/cpuinfo; then
		local kernels
		kernels=$(GOEXPERIMENT=simd go test -count=1 -run 'TestKernels' -v ./model/)
		grep -q -- '--- PASS: TestKernelsMatchReference/avx2/' <<<"$kernels" ||
			{ say "the avx2 kernel set was not tested on a CPU that has AVX2 and FMA"; exit 1; }
	fi
	say "browser tests (node --test, headless chromium)"
	(cd web && node --test --test-reporter=spec test/)
	say "all tests passed"
}

case "${1:-build}" in
build) build ;;
run)
	build
	shift || true
	./bin/matedge generate "$@"
	;;
test) run_tests ;;
*)
	echo "usage: ./build.sh [build|run [generate flags]|test]" >&2
	exit 2
	;;
esac
