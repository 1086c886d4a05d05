{
  "targets": [
    {
      "target_name": "socklb_bpf",
      "sources": [
        "src/native/addon.cc",
        "src/native/fd.cc",
        "src/native/map.cc",
        "src/native/object.cc",
        "src/native/link.cc",
        "src/native/sock_diag.cc",
        "src/native/prog.cc"
      ],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_VERSION=8", "NAPI_CPP_EXCEPTIONS"],
      "cflags!": ["-fno-exceptions"],
      "cflags_cc!": ["-fno-exceptions"],
      "cflags_cc": ["-std=c++17", "-fexceptions", "-Wall", "-Wextra", "-Wno-unused-parameter"],
      "libraries": ["-lbpf", "-lelf", "-lz"]
    }
  ]
}
