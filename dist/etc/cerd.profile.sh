# cerctl talks to the packaged cerd's socket (members of the group cerd).
if [ -z "${CERD_SOCKET:-}" ] && [ -S /run/cerd/cerd.sock ]; then
    export CERD_SOCKET=/run/cerd/cerd.sock
fi
