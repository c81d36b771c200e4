# Shared by scripts/*: find Python 3.11+, make .venv if missing, install Cairn (editable) with extras.
find_python() {
    for candidate in python3.13 python3.12 python3.11 python3; do
        if command -v "$candidate" >/dev/null 2>&1 &&
            "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
            echo "$candidate"
            return 0
        fi
    done
    echo "Cairn needs Python 3.11 or newer on PATH" >&2
    return 1
}

ensure_venv() {  # ensure_venv [extra]
    local extra="${1:-}"
    if [ ! -x .venv/bin/python ]; then
        echo "== creating .venv"
        "$(find_python)" -m venv .venv
    fi
    local spec="."
    [ -n "$extra" ] && spec=".[$extra]"
    echo "== installing Cairn${extra:+ with $extra extras}"
    .venv/bin/python -m pip install --quiet --disable-pip-version-check -e "$spec"
}
