{
  "targets": [
    {
      "target_name": "shared_memory",
      "sources": ["src/shared_memory.c"],
      "defines": ["NAPI_VERSION=8"],
      "cflags": ["-O2", "-Wall", "-Wextra", "-Werror"]
    }
  ]
}
