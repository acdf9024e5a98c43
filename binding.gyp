{
  "targets": [
    {
      "target_name": "pg_tsworker_addon",
      "sources": [
        "native/addon/js_addon.cc",
        "native/addon/js_cursors.cc",
        "native/addon/js_error.cc",
        "native/addon/js_params.cc",
        "native/addon/js_shapes.cc",
        "native/addon/js_param_text.cc",
        "native/addon/js_statements.cc",
        "native/addon/js_values.cc",
        "native/addon/pg_cursor.c",
        "native/addon/pg_encoding.c",
        "native/addon/pg_error.c",
        "native/addon/pg_jsonb.c",
        "native/addon/pg_params.c",
        "native/addon/pg_plan.c",
        "native/addon/pg_report.c",
        "native/addon/pg_result.c",
        "native/addon/pg_stmt.c",
        "native/addon/pg_values.c",
        "native/addon/pg_xact.c"
      ],
      "include_dirs": [
        "<!(pg_config --includedir-server)"
      ],
      "defines": [
        "NAPI_VERSION=8"
      ],
      "cflags": ["-fvisibility=hidden", "-Wno-unused-parameter", "-Wno-missing-field-initializers", "-O2"],
      "cflags_cc": ["-fvisibility=hidden", "-std=c++17", "-O2"],
      "cflags!": ["-fno-exceptions"],
      "cflags_cc!": ["-fno-exceptions"]
    }
  ]
}
