{
  "targets": [
    {
      "target_name": "pg_tsworker_addon",
      "sources": ["native/addon/addon.cc", "native/addon/spi.c", "native/addon/values.c"],
      "include_dirs": [
        "<!(node -p \"require('node-addon-api').include_dir\")",
        "<!(pg_config --includedir-server)"
      ],
      "defines": [
        "NAPI_VERSION=8",
        "NAPI_DISABLE_CPP_EXCEPTIONS",
        "NODE_ADDON_API_DISABLE_DEPRECATED",
        "NODE_API_SWALLOW_UNTHROWABLE_EXCEPTIONS"
      ],
      "cflags": ["-fvisibility=hidden", "-Wno-unused-parameter", "-Wno-missing-field-initializers"],
      "cflags_cc": ["-fvisibility=hidden", "-std=c++17"],
      "cflags!": ["-fno-exceptions"],
      "cflags_cc!": ["-fno-exceptions"]
    }
  ]
}
