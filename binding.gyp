{
  # CPU-only build through node-gyp, for machines without CMake and for prebuildify.
  # Sources come from native/sources.txt (the list CMakeLists.txt reads); .cu files are left out.
  "targets": [
    {
      "target_name": "osp",
      "sources": [
        "<!@(node -e \"require('fs').readFileSync('native/sources.txt','utf8').split(/\\r?\\n/).map(l=>l.trim()).filter(l=>l&&!l.startsWith('#')&&!l.endsWith('.cu')).forEach(l=>console.log(l))\")"
      ],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_VERSION=8", "NAPI_CPP_EXCEPTIONS", "NODE_ADDON_API_DISABLE_DEPRECATED"],
      "cflags!": ["-fno-exceptions"],
      "cflags_cc!": ["-fno-exceptions", "-fno-rtti"],
      "cflags_cc": ["-std=c++17", "-O3", "-fno-math-errno", "-Wno-psabi"],
      "xcode_settings": {
        "GCC_ENABLE_CPP_EXCEPTIONS": "YES",
        "CLANG_CXX_LANGUAGE_STANDARD": "c++17",
        "OTHER_CPLUSPLUSFLAGS": ["-O3", "-fno-math-errno"]
      },
      "msvs_settings": { "VCCLCompilerTool": { "ExceptionHandling": 1, "AdditionalOptions": ["/std:c++17"] } }
    }
  ]
}
