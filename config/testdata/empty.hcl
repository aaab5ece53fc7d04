# Neither a listener nor a route.
engine {
  loops = 1
}
